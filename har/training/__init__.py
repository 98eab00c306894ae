"""Training: everything that imports TensorFlow (model, augmentation, fit, cross-validation, TFLite conversion)."""
