"""``TrainConfig.validate``: every option in range and every name known, or one line naming the flag and the fix.

Ranges live here, with the option; the types of a config.json's values are checked at the boundary
(config/config_schema.py) before these checks see them.
"""
from __future__ import annotations

import os

from deepdive.config.machine import memory_limit
from deepdive.config.names import (AUGMENTATIONS, DEVICES, ENGINES, MAX_CLASSES, MAX_EPOCHS, MAX_LR, MAX_SIDE,
                                   NORMALIZATIONS,
                                   OPTIMIZERS, RESIZE_MODES, SCHEDULES, TTA_MODES, did_you_mean)
from deepdive.config.recipes import RECIPES
from deepdive.config.schema import SYNTHETIC, fits
from deepdive.config.specs import DATASETS, MODELS_SPECS, check_model_name, spec
from deepdive.errors import UserError

# Options the scratch engine does not implement: refused by name, never silently ignored.
TORCH_ONLY_OPTIONS = {"ema": None, "augment": "none", "tta": "none", "amp": False, "compile": False,
                      "channels_last": None, "init_from": None, "freeze_backbone": False, "head_lr": None,
                      "sync_bn": False}

def validate(self) -> None:
    """Every value of a TrainConfig in range, every name known: one line naming the flag and the fix."""

    check_model_name(self.model)
    _choice("dataset", self.dataset, DATASETS)
    _choice("optimizer", self.optimizer, OPTIMIZERS)
    _choice("engine", self.engine, ENGINES)
    _choice("device", self.device, DEVICES)
    _choice("normalization", self.normalization, NORMALIZATIONS)
    if self.recipe is not None:
        _choice("recipe", self.recipe, RECIPES)
    _choice("schedule", self.schedule, SCHEDULES)
    _choice("augment", self.augment, AUGMENTATIONS)
    _choice("tta", self.tta, TTA_MODES)
    _choice("resize mode", self.resize_mode, RESIZE_MODES)
    if self.engine == "scratch":
        _validate_scratch(self, spec(self.model).torch_only)
    if not isinstance(self.label_smoothing, (int, float)) or not 0 <= self.label_smoothing < 1:
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
    if self.widths is not None and (not isinstance(self.widths, list) or not 1 <= len(self.widths) <= 16
                                    or not all(isinstance(w, int) and 0 < w <= 8192 for w in self.widths)):
        raise UserError(f"--widths {self.widths!r} is invalid: give 1 to 16 integers in 1..8192, e.g. 64,256,256")
    _positive("lr", self.lr, float)
    _positive("batch-size", self.batch_size, int)
    _positive("epochs", self.epochs, int)
    _validate_schedule(self)
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
    if self.article_exact and not spec(self.model).article_exact:
        accepting = [name for name, s in MODELS_SPECS.items() if s.article_exact]
        raise UserError(f"--article-exact applies to --model {', '.join(accepting)} only: drop it for other models")
    if self.weight_decay is not None and not (0 <= self.weight_decay < float("inf")):
        raise UserError(f"--weight-decay {self.weight_decay} is invalid: give a finite value >= 0")
    if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2 ** 63:
        raise UserError(f"--seed {self.seed!r} is out of range: give a whole number in 0..2**63-1")
    if not isinstance(self.workers, int) or isinstance(self.workers, bool) or not 0 <= self.workers <= 256:
        raise UserError(f"--workers {self.workers!r} is invalid: give 0 (decode in the main process) to 256")
    if self.image_size > MAX_SIDE:
        raise UserError(f"--image-size {self.image_size} is too large: give at most {MAX_SIDE} pixels")
    if self.crop_pad > MAX_SIDE:
        raise UserError(f"--crop-pad {self.crop_pad} is too large: give fewer pixels than the image side")
    if not (isinstance(self.divergence_factor, (int, float)) and 1 < self.divergence_factor < float("inf")):
        raise UserError(f"--divergence-factor {self.divergence_factor!r} is invalid: give a number > 1, "
                        "e.g. 1000")
    _positive("max-image-mb", self.max_image_mb, float)
    _positive("dist-timeout", self.dist_timeout, float)
    if not (isinstance(self.log_every, (int, float)) and 0 <= self.log_every < float("inf")):
        raise UserError(f"--log-every {self.log_every!r} is invalid: give seconds >= 0 (0: no progress lines)")
    if self.max_image_mb > 1 << 20:
        raise UserError(f"--max-image-mb {self.max_image_mb:g} is beyond any image file: give at most {1 << 20}")
    if self.threads is not None and self.threads > 4 * (os.cpu_count() or 1):
        raise UserError(f"--threads {self.threads} is more than 4x this machine's {os.cpu_count()} cores: "
                        "give at most the number of cores")
    if self.epochs > MAX_EPOCHS:
        raise UserError(f"--epochs {self.epochs} is beyond any run: give at most {MAX_EPOCHS:,}")
    _validate_synthetic(self.synthetic, sized=self.dataset == "synthetic")
    _validate_finetuning(self)

def _validate_finetuning(self) -> None:

    if not spec(self.model).pretrained:
        used = [f for f in ("small_input", "pretrained", "weights") if getattr(self, f)]
        if used:
            raise UserError(f"--{used[0].replace('_', '-')} applies to tv:<name> and timm:<name> models, not "
                            f"{self.model}: drop it (--init-from RUN starts from another run's weights)")
    if self.init_from is not None and self.weights:
        raise UserError("--init-from and --weights both name the starting weights: give one of them")
    if self.freeze_backbone and self.eval_train_mode:
        raise UserError("--eval-train-mode measures with BatchNorm in train mode, which moves a frozen backbone's "
                        "statistics: drop one of --freeze-backbone and --eval-train-mode")
    if self.unfreeze_after is not None:
        if not self.freeze_backbone:
            raise UserError("--unfreeze-after needs --freeze-backbone: add it, or drop --unfreeze-after")
        if self.time_budget:
            raise UserError("--unfreeze-after counts epochs: it needs a known number of epochs, not --time-budget")
        if self.epochs < 2:
            raise UserError("--unfreeze-after needs --epochs of at least 2 (frozen epochs, then the rest)")
        if not isinstance(self.unfreeze_after, int) or isinstance(self.unfreeze_after, bool) \
                or not 0 < self.unfreeze_after < self.epochs:
            raise UserError(f"--unfreeze-after {self.unfreeze_after!r} is out of range: give whole epochs "
                            f"1..{self.epochs - 1} (fewer than --epochs)")
    if self.head_lr is not None:
        _positive("head-lr", self.head_lr, float)
    for flag, value in (("lr", self.lr), ("head-lr", self.head_lr)):
        if value is not None and value > MAX_LR:
            raise UserError(f"--{flag} {value:g} is beyond any learning rate: give at most {MAX_LR:g}")
    for name in ("weights", "init_from"):
        value = getattr(self, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise UserError(f"--{name.replace('_', '-')} {value!r} is invalid: give a path")
    if self.classes is not None:
        if not isinstance(self.classes, list) or not all(isinstance(c, (str, int)) and not isinstance(c, bool)
                                                         and str(c) for c in self.classes):
            raise UserError(f"--classes {self.classes!r} is invalid: give class names or indices separated by "
                            "commas, e.g. cat,dog or 3,5")
        if len(self.classes) < 2 or len({str(c) for c in self.classes}) != len(self.classes):
            raise UserError(f"--classes {','.join(map(str, self.classes))} must name at least two different "
                            "classes")

def _validate_scratch(self, torch_only_model: bool) -> None:
    if torch_only_model:
        origin = f" (from --recipe {self.recipe})" if self.recipe else ""
        raise UserError(f"--model {self.model}{origin} needs the torch engine (BatchNorm, GELU): "
                        "drop --engine scratch or choose another model")
    used = [name for name, off in TORCH_ONLY_OPTIONS.items() if getattr(self, name) not in (off, None, False)]
    if used:
        flags = ", ".join(f"--{n.replace('_', '-')}" for n in used)
        raise UserError(f"{flags} {'is' if len(used) == 1 else 'are'} torch-engine only: "
                        "drop it or drop --engine scratch")

def _validate_schedule(self) -> None:
    if not isinstance(self.warmup, (int, float)) or not 0 <= self.warmup < 1:
        raise UserError(f"--warmup {self.warmup} is out of range: give a fraction in [0, 1)")
    if self.warmup_epochs is not None:
        if self.warmup:
            raise UserError("--warmup and --warmup-epochs both given: give one of them")
        if self.time_budget:
            raise UserError("--warmup-epochs needs a known number of epochs: use --warmup F with --time-budget")
        if not (isinstance(self.warmup_epochs, (int, float)) and 0 <= self.warmup_epochs < self.epochs):
            raise UserError(f"--warmup-epochs {self.warmup_epochs!r} is out of range: give 0 <= E < --epochs")
    if self.schedule == "step":
        if self.time_budget:
            raise UserError("--sched step counts epochs: use cosine or warmup-linear with --time-budget")
        if self.decay_epochs is None:
            raise UserError("--sched step needs --decay-epochs N: the lr is multiplied by --decay-rate every N")
    elif self.decay_epochs is not None:
        raise UserError(f"--decay-epochs applies to --sched step, not {self.schedule}: drop it or use --sched step")
    if self.decay_epochs is not None:
        _positive("decay-epochs", self.decay_epochs, float)
    if not (isinstance(self.decay_rate, (int, float)) and 0 < self.decay_rate <= 1):
        raise UserError(f"--decay-rate {self.decay_rate!r} is out of range: give a factor in (0, 1], e.g. 0.1")


def _choice(what: str, value: str, choices) -> None:
    if value not in choices:
        raise UserError(f"unknown {what} {value!r}{did_you_mean(value, choices)}: choose one of {', '.join(choices)}")


def _positive(flag: str, value, kind) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or not value > 0 or value != value or value == float("inf"):
        raise UserError(f"--{flag} {value!r} is invalid: give a positive {'integer' if kind is int else 'number'}")


def _validate_synthetic(spec: dict, sized: bool = True) -> None:

    if not fits(spec, SYNTHETIC):
        raise UserError(f"synthetic dataset spec {spec!r} is invalid: give shape C,H,W (C 1 or 3, sides up to "
                        f"{MAX_SIDE}), classes 2..{MAX_CLASSES}, train and test > 0")
    if not sized:
        return
    c, h, w = spec["shape"]
    needed = (spec["train"] + spec["test"]) * c * h * w
    if needed > memory_limit():
        raise UserError(f"the synthetic dataset would take {needed / 1e9:.1f} GB, more than the "
                        f"{memory_limit() / 1e9:.1f} GB allowed: give a smaller --synthetic-shape")


