"""The on-device runtime: TFLite interpreter only (ai-edge-litert or tflite-runtime), never
TensorFlow. ``WindowClassifier`` runs one bundle; ``live`` streams sources through it."""

from __future__ import annotations

from har.runtime.classifier import WindowClassifier
from har.runtime.interpreter import load_interpreter

__all__ = ["WindowClassifier", "load_interpreter"]
