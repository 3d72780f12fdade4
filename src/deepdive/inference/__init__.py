"""Inference: a run folder opened as a Predictor (the one path for normalization, test-time views and the
scratch-to-torch bridge), and evaluate / predict / export built on it."""
