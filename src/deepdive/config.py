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
TTA_MODES = ("none", "flip", "flip-shift")


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
    recipe: str | None = None  # a named preset (recipes.py); flags given override its values
    schedule: str = "constant"  # learning-rate schedule over training progress (schedule.py)
    warmup: float = 0.0  # warm-up fraction of training
    label_smoothing: float = 0.0
    ema: float | None = None  # decay of an exponential moving average of the weights (evaluated instead)
    augment: str = "none"  # batched augmentation (data/augment.py)
    crop_pad: int = 2  # random-crop translation, in pixels
    tta: str = "none"  # test-time augmentation: none | flip | flip-shift
    widths: list | None = None  # fastnet block widths
    whiten: bool = True  # fastnet: frozen patch-whitening first layer
    decoupled_wd: bool = False  # weight decay as θ ← θ(1 − ηλ), outside the gradient
    amp: bool = False  # bf16 autocast (CUDA, or a CPU with native bf16)
    compile: bool = False  # torch.compile the model
    target_accuracy: float | None = None  # stop when the test accuracy reaches this
    time_budget: float | None = None  # train for this many seconds; the schedule follows elapsed time
    evals_per_epoch: int = 4  # test evaluations per epoch while chasing --target-accuracy
    stop_at_target: bool = True  # False: note when the target is reached, train on to the end
    eval_each_epoch: bool = True  # False: evaluate after the last epoch only (timed benchmarks)
    workers: int = 2  # DataLoader workers when an image folder must be streamed from disk
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
        from deepdive.data import AUGMENTATIONS
        from deepdive.models.registry import TORCH_ONLY
        from deepdive.recipes import RECIPES
        from deepdive.schedule import SCHEDULES
        if self.recipe is not None:
            _choice("recipe", self.recipe, RECIPES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("augment", self.augment, AUGMENTATIONS)
        _choice("tta", self.tta, TTA_MODES)
        if self.engine == "scratch" and (self.recipe or self.model in TORCH_ONLY):
            what = f"--recipe {self.recipe}" if self.recipe else f"--model {self.model}"
            raise UserError(f"{what} needs the torch engine (BatchNorm, GELU, bf16): drop --engine scratch")
        if self.engine == "scratch":
            for name, off in (("augment", "none"), ("tta", "none"), ("schedule", "constant")):
                if getattr(self, name) != off:
                    raise UserError(f"--{name} {getattr(self, name)} is torch-engine only: drop it or --engine scratch")
            if self.ema or self.label_smoothing or self.amp or self.compile or self.decoupled_wd:
                raise UserError("--ema/--label-smoothing/--amp/--compile/--decoupled-wd are torch-engine only: "
                                "drop them or --engine scratch")
        if not 0 <= self.warmup < 1:
            raise UserError(f"--warmup {self.warmup} is out of range: give a fraction in [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing {self.label_smoothing} is out of range: give a value in [0, 1)")
        if self.ema is not None and not 0 < self.ema < 1:
            raise UserError(f"--ema {self.ema} is out of range: give a decay in (0, 1), e.g. 0.99")
        if not isinstance(self.crop_pad, int) or self.crop_pad < 0:
            raise UserError(f"--crop-pad {self.crop_pad!r} is invalid: give 0 or a positive integer")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise UserError(f"--target-accuracy {self.target_accuracy} is not a fraction: give e.g. 0.612 for 61.2%")
        if self.time_budget is not None:
            _positive("time-budget", self.time_budget, float)
        _positive("evals-per-epoch", self.evals_per_epoch, int)
        if self.widths is not None and (not isinstance(self.widths, list) or len(self.widths) < 1
                                        or not all(isinstance(w, int) and w > 0 for w in self.widths)):
            raise UserError(f"--widths {self.widths!r} is invalid: give positive integers, e.g. 64,256,256")
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
        """Build from values; a named ``recipe`` fills in what ``values`` does not set."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown config key(s) {', '.join(unknown)}: remove them (known: {', '.join(sorted(known))})")
        recipe = values.get("recipe")
        if recipe is not None:
            from deepdive.recipes import RECIPES, recipe_values
            if recipe not in RECIPES:
                raise UserError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
            values = {**recipe_values(recipe, values.get("device", "auto")), **values}
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
