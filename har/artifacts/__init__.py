"""Artifacts: model metadata, bundle manifest, model-directory and bundle layouts. No TensorFlow."""
