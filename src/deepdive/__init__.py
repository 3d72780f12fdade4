"""deepdive: the article "Deep Learning Deep Dive" as software.

Practice lives in the floors of this package (PyTorch); theory lives in :mod:`deepdive.scratch` (NumPy only).
The Python API, imported on first use (``import deepdive`` stays free of torch):

    deepdive.load(run, device="auto") -> Predictor      (inference/predictor.py)
    deepdive.train(**config) -> summary dict             (api.py)
"""
from deepdive.version import __version__

__all__ = ["Predictor", "__version__", "load", "train"]


def load(run, device: str = "auto", amp: bool | None = None):
    """A run folder as a ready ``Predictor`` (``inference.predictor.load``)."""
    from deepdive.inference.predictor import load as load_run
    return load_run(run, device=device, amp=amp)


def train(overwrite: bool = False, **config):
    """Train as ``deepdive train`` does and return its summary (``api.train``)."""
    from deepdive.api import train as train_run
    return train_run(overwrite=overwrite, **config)


def __getattr__(name: str):
    if name == "Predictor":
        from deepdive.inference.predictor import Predictor
        return Predictor
    raise AttributeError(f"module 'deepdive' has no attribute {name!r}")
