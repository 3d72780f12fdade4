"""Training: the loop (``loop.Trainer``), its state (``state.TrainState``, ``state.Stopwatch``), and setup."""
from deepdive.train.loop import Trainer
from deepdive.train.setup import Components, build_components, run_training, seed_everything
from deepdive.train.state import Stopwatch, TrainState
from deepdive.train.threads import set_threads

__all__ = ["Components", "Stopwatch", "TrainState", "Trainer", "build_components", "run_training",
           "seed_everything", "set_threads"]
