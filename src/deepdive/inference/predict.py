"""``deepdive predict RUN_DIR IMAGE_OR_DIR...``: top-K classes for image files.

Each file is read exactly as image-folder training data is (``load_image``:
converted to the model's channels, fitted to its input size by the run's
recorded ``resize_mode`` - squash for runs that predate it) and
normalized with the run's own mean and std, and classified with its test-time
views - all by ``deepdive.load``'s predictor (``inference.predictor.Predictor.predict``), so
predict, evaluate and the Python API agree bit for bit. Files that are not
images are reported and do not stop the rest.
"""
from __future__ import annotations

import os
from pathlib import Path

from deepdive.errors import UserError


def collect_files(inputs: list[str]) -> list[Path]:
    """Files as given; folders expand to every file below them, in sorted order."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files.extend(Path(root) / n for n in sorted(names))
        else:
            files.append(path)
    return files


def predict_files(run_dir: str, inputs: list[str], top_k: int = 5, device: str = "auto") -> list[dict]:
    """Top-``top_k`` classes of every file ``inputs`` name (folders expanded), through ``deepdive.load``'s
    predictor: the probabilities are those ``deepdive.load(run_dir)(files)`` returns, bit for bit."""
    from deepdive.inference.predictor import load

    if top_k <= 0:
        raise UserError(f"--top-k {top_k} is invalid: give a positive integer")
    return load(run_dir, device).predict(collect_files(inputs), top_k)
