"""deepdive: the article "Deep Learning Deep Dive" as software.

Practice lives in the top-level modules (PyTorch); theory lives in
:mod:`deepdive.scratch` (NumPy only).
"""
__version__ = "0.1.0"

# The Python API (``deepdive.api``), imported on first use: ``import deepdive`` stays free of torch.
#   deepdive.load(run, device="auto") -> api.Predictor        deepdive.train(**config) -> summary dict
# ``deepdive.train`` is also the training subpackage: importing it makes the package itself callable
# (train/__init__.py), so it is the same object however it was reached.
_API = {"load": "deepdive.api", "Predictor": "deepdive.api", "train": "deepdive.train"}


def __getattr__(name: str):
    if name in _API:
        import importlib

        module = importlib.import_module(_API[name])
        return module if name == "train" else getattr(module, name)
    raise AttributeError(f"module 'deepdive' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
