"""Foundations shared by every layer, with no TensorFlow: files, parsing, units, classes, CLI."""
