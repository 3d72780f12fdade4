"""TrainConfig: the one source of truth for a run, validated once.

The CLI builds it from flags (or from a run's ``config.json``), everything
below reads it, and the resolved form is written into every run folder so that
``deepdive train --config RUN/config.json`` repeats the run.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepdive.errors import UserError

ENGINES = ("torch", "scratch")
DEVICES = ("auto", "cpu", "cuda")
NORMALIZATIONS = ("dataset", "mnist")


@dataclass
class TrainConfig:
    model: str = "simplenet"
    dataset: str = "fashion-mnist"
    data_dir: str = "./data"
    engine: str = "torch"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float | None = None  # None: the optimizer's own default
    weight_decay: float | None = None  # None: the optimizer's own default
    batch_size: int = 64
    epochs: int = 10
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    article_exact: bool = False
    image_size: int = 32
    download: bool = True
    normalization: str = "dataset"  # "mnist": the article's (0.1307, 0.3081) on every channel
    eval_train_mode: bool = False  # also report accuracy with dropout active, as the article's script measured it
    threads: int | None = None  # CPU threads for torch; None: all cores
    save_every: int = 1  # checkpoint every N epochs (and always at the end)
    keep: int = 0  # keep checkpoints/epoch-NNN.safetensors for the last K epochs
    val_split: float | None = None  # hold out this stratified fraction of train for validation
    grad_clip: float | None = None  # clip the global gradient norm to this
    strict: bool = False  # imagefolder: refuse unreadable files instead of skipping them
    synthetic: dict = field(default_factory=lambda: {"shape": [3, 32, 32], "classes": 10, "train": 2000, "test": 500})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        from deepdive.data import DATASETS
        from deepdive.models import MODELS
        from deepdive.optim import OPTIMIZERS

        _choice("model", self.model, MODELS)
        _choice("dataset", self.dataset, DATASETS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("engine", self.engine, ENGINES)
        _choice("device", self.device, DEVICES)
        _choice("normalization", self.normalization, NORMALIZATIONS)
        _positive("lr", self.lr, float)
        _positive("batch-size", self.batch_size, int)
        _positive("epochs", self.epochs, int)
        _positive("image-size", self.image_size, int)
        _positive("save-every", self.save_every, int)
        if not isinstance(self.keep, int) or self.keep < 0:
            raise UserError(f"--keep {self.keep!r} is invalid: give 0 or a positive integer")
        if self.val_split is not None and not (0 < self.val_split < 1):
            raise UserError(f"--val-split {self.val_split} is out of range: give a fraction between 0 and 1, e.g. 0.1")
        if self.grad_clip is not None:
            _positive("grad-clip", self.grad_clip, float)
        for name in ("limit_train", "limit_test", "threads"):
            value = getattr(self, name)
            if value is not None:
                _positive(name.replace("_", "-"), value, int)
        if self.momentum is not None and not (0.0 <= self.momentum < 1.0):
            raise UserError(f"--momentum {self.momentum} is out of range: give a value in [0, 1)")
        if self.optimizer == "nesterov" and self.momentum == 0:
            raise UserError("--optimizer nesterov needs momentum > 0: drop --momentum 0 or use --optimizer sgd")
        if self.article_exact and self.model != "simplenet":
            raise UserError("--article-exact applies to --model simplenet only: drop it for other models")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise UserError(f"--weight-decay {self.weight_decay} is negative: give a value >= 0")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise UserError(f"--seed {self.seed!r} is not an integer: give a whole number")
        _validate_synthetic(self.synthetic)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown config key(s) {', '.join(unknown)}: remove them (known: {', '.join(sorted(known))})")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"config file {path} does not exist: give the config.json of a run folder") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"config file {path} is not readable JSON ({exc}): give the config.json of a run folder") from None
        if not isinstance(values, dict):
            raise UserError(f"config file {path} does not hold a JSON object: give the config.json of a run folder")
        return cls.from_dict(values)


def _choice(what: str, value: str, choices) -> None:
    if value not in choices:
        raise UserError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")


def _positive(flag: str, value, kind) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or not value > 0 or value != value or value == float("inf"):
        raise UserError(f"--{flag} {value!r} is invalid: give a positive {'integer' if kind is int else 'number'}")


def _validate_synthetic(spec: dict) -> None:
    try:
        shape = [int(s) for s in spec["shape"]]
        ok = len(shape) == 3 and all(s > 0 for s in shape) and shape[0] in (1, 3)
        ok = ok and int(spec["classes"]) >= 2 and int(spec["train"]) > 0 and int(spec["test"]) > 0
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(
            f"synthetic dataset spec {spec!r} is invalid: give shape C,H,W (C 1 or 3), classes >= 2, train and test > 0")
