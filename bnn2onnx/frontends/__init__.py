"""Frontends: turn a source model (Keras/Larq file, ...) into one canonical float ONNX model."""
