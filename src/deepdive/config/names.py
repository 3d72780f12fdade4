"""Every name the configuration validates against, and the bounds it holds values to.

The floors above register what these names *do* (the optimizer factory, the schedules, the readers); the
names themselves live here, at the bottom, so that validating a configuration imports nothing above it.
"""
from __future__ import annotations

import difflib

MAX_EPOCHS = 1_000_000
MAX_LR = 1e30  # far beyond any training (the divergence tests use 1e9), within what torch's lr can hold
MAX_SIDE = 4096  # the largest image side (--image-size, --synthetic-shape, model.json's input shape)
DEVICES = ("auto", "cpu", "cuda")
NORMALIZATIONS = ("dataset", "mnist")
TTA_MODES = ("none", "flip", "flip-shift")
TTA_VIEWS = {"none": 1, "flip": 2, "flip-shift": 4}  # forward passes per test image (training/evaluation.py)
MAX_CLASSES = 100_000
MAX_CLASS_NAME = 255  # characters: a folder name's limit on common file systems; longer is not a class name
AUGMENTATIONS = ("none", "flip", "crop-flip", "crop-altflip", "altflip")  # see data/augment.py
RESIZE_MODES = ("crop", "squash")  # how image files are fitted to --image-size (data/imagefolder.py)
SCHEDULES = ("constant", "warmup-linear", "cosine", "step", "onecycle")

OPTIMIZERS = {
    "sgd": "plain SGD: θ -= η∇L (momentum 0 unless --momentum)",
    "momentum": "SGD with momentum (--momentum, default 0.9)",
    "nesterov": "SGD with Nesterov momentum (--momentum, default 0.9)",
    "adagrad": "Adagrad: per-parameter steps shrink with the sum of squared gradients",
    "adadelta": "Adadelta: steps scaled by RMS of past updates over RMS of gradients",
    "rmsprop": "RMSprop: steps scaled by a running RMS of gradients",
    "adam": "Adam: bias-corrected first and second moment estimates",
    "adamw": "AdamW: Adam with decoupled weight decay",
}
DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01, "adadelta": 1.0,
              "rmsprop": 0.01, "adam": 1e-3, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"adamw": 1e-2}  # torch.optim's own defaults; every other optimizer's is 0


def did_you_mean(word, choices) -> str:
    """' (did you mean X?)' for the closest of ``choices``, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""
