"""Training: the loop (``loop.Trainer``), its state (``state.TrainState``, ``state.Stopwatch``), and setup."""
import sys
import types

from deepdive.train.loop import Trainer
from deepdive.train.setup import Components, build_components, run_training, seed_everything
from deepdive.train.state import Stopwatch, TrainState
from deepdive.train.threads import set_threads

__all__ = ["Components", "Stopwatch", "TrainState", "Trainer", "build_components", "run_training",
           "seed_everything", "set_threads"]


class _CallablePackage(types.ModuleType):
    """``deepdive.train`` is this package and, called, the Python API's ``deepdive.train(**config)``
    (``api.train``): the name cannot be two objects, and the package is what ``import deepdive.train`` binds."""

    def __call__(self, overwrite: bool = False, **config):
        from deepdive.api import train
        return train(overwrite=overwrite, **config)


sys.modules[__name__].__class__ = _CallablePackage
