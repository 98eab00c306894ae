"""har: embedded human-activity recognition.

Record accelerometer streams, train a many-to-one LSTM, export it to TFLite and classify live
with only the TFLite runtime. The runtime side (``har.runtime``, ``har.artifacts.bundle``, ``har.sources``)
never imports TensorFlow or Keras.
"""

__version__ = "0.1.0"
