"""The Python API's ``deepdive.train(**config)`` -> the summary (``deepdive.load`` is ``inference.predictor.load``).

It trains exactly as ``deepdive train`` does: the same resolution of the options, the same loop, the same
end-of-run figures. Importing ``deepdive`` imports none of this (nor torch): ``deepdive.train`` imports it on
first use.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from deepdive.errors import UserError


def train(overwrite: bool = False, **config: Any) -> dict:
    """Train as ``deepdive train`` does and return its summary (summary.json's object).

    Keyword arguments are ``TrainConfig`` fields (``model="fastnet"``, ``epochs=3``, ``out="runs/x"``, ...),
    plus ``synthetic_shape``/``synthetic_classes`` and ``config`` (a config.json to start from, as
    ``--config``), resolved by ``config.resolve.resolve_config`` exactly as the command's flags are; ``overwrite``
    replaces an existing run folder. Bad values raise ``UserError``, a failed run ``RunFailed``.

    Paths (``out``, ``data_dir``, ``init_from``, ``weights``, ``config``) may be ``str`` or any
    ``os.PathLike`` (a ``pathlib.Path``): config.json records them as text. ``synthetic_shape`` is a
    sequence of three ints or a ``"C,H,W"`` string, as ``--synthetic-shape`` takes.
    """
    from deepdive.config.resolve import resolve_config
    from deepdive.storage.config_file import read_config_file
    from deepdive.training.setup import run_training
    from deepdive.viz.run_figures import when_complete

    flags = _train_flags(config)
    config_file = flags.pop("config", None)
    file_values = read_config_file(config_file) if config_file else None
    return run_training(resolve_config(flags, file_values), overwrite=overwrite, figures=when_complete)


PATH_ARGUMENTS = ("out", "data_dir", "init_from", "weights", "config")  # train()'s keyword arguments naming files


def _train_flags(config: dict) -> dict:
    """``train``'s keyword arguments as the CLI's flags would give them: paths as text (json.dump and the
    config's checks take ``str``, not ``Path``), ``synthetic_shape`` as a list of ints. Checked here, before
    a run folder is made, so a bad type is one ``UserError`` and leaves nothing behind."""
    flags = dict(config)
    for name in PATH_ARGUMENTS:
        if name not in flags or (flags[name] is None and name != "data_dir"):  # None: the default (data_dir has one)
            continue
        value = flags[name]
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, bytes):
            value = os.fsdecode(value)
        if not isinstance(value, str) or not value:
            raise UserError(f"{name}={value!r} is invalid: give a path (a str or os.PathLike such as pathlib.Path)")
        flags[name] = value
    if "synthetic_shape" in flags:
        flags["synthetic_shape"] = _synthetic_shape(flags["synthetic_shape"])
    return flags


def _synthetic_shape(shape) -> list:
    """A "C,H,W" string or a sequence of three ints as a list of ints (their ranges are checked by the config)."""
    fix = 'give three ints C,H,W: a "3,32,32" string or a sequence such as (3, 32, 32)'
    if isinstance(shape, str):
        try:
            values = [int(part) for part in shape.split(",")]
        except ValueError:
            raise UserError(f"synthetic_shape {shape!r} is invalid: {fix}") from None
    elif isinstance(shape, (list, tuple)) or (isinstance(shape, np.ndarray) and shape.ndim == 1):
        values = list(shape.tolist() if isinstance(shape, np.ndarray) else shape)
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            raise UserError(f"synthetic_shape {shape!r} is invalid: {fix}")
        values = [int(v) for v in values]
    else:
        raise UserError(f"synthetic_shape {shape!r} is invalid: {fix}")
    if len(values) != 3:
        raise UserError(f"synthetic_shape {shape!r} is invalid: {fix}")
    return values
