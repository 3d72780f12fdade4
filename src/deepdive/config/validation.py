"""``TrainConfig.validate``: every option in range and every name known, or one line naming the flag and the fix.

Ranges live here, with the option; the types of a config.json's values are checked at the boundary
(config/config_schema.py) before these checks see them.
"""
from __future__ import annotations

import os

from deepdive.config.machine import memory_limit
from deepdive.config.names import (AUGMENTATIONS, DEVICES, MAX_CLASSES, MAX_EPOCHS, MAX_LR, MAX_SIDE,
                                   NORMALIZATIONS,
                                   OPTIMIZERS, RESIZE_MODES, SCHEDULES, TTA_MODES, did_you_mean)
from deepdive.config.recipes import RECIPES
from deepdive.config.schema import SYNTHETIC, fits
from deepdive.config.specs import DATASETS, ENGINE_SPECS, ENGINES, MODELS_SPECS, check_model_name, spec
from deepdive.errors import UserError


def validate(cfg) -> None:
    """Every value of a TrainConfig in range, every name known: one line naming the flag and the fix (the
    checks run in this order, so that of several problems the same one is always said)."""
    _validate_names(cfg)
    _validate_training(cfg)
    _validate_run(cfg)
    _validate_synthetic(cfg.synthetic, sized=cfg.dataset == "synthetic")
    _validate_finetuning(cfg)


def _validate_names(cfg) -> None:
    check_model_name(cfg.model)
    check_choice("dataset", cfg.dataset, DATASETS)
    check_choice("optimizer", cfg.optimizer, OPTIMIZERS)
    check_choice("engine", cfg.engine, ENGINES)
    check_choice("device", cfg.device, DEVICES)
    check_choice("normalization", cfg.normalization, NORMALIZATIONS)
    if cfg.recipe is not None:
        check_choice("recipe", cfg.recipe, RECIPES)
    check_choice("schedule", cfg.schedule, SCHEDULES)
    check_choice("augment", cfg.augment, AUGMENTATIONS)
    check_choice("tta", cfg.tta, TTA_MODES)
    check_choice("resize mode", cfg.resize_mode, RESIZE_MODES)
    _validate_engine(cfg, ENGINE_SPECS[cfg.engine], spec(cfg.model).torch_only)
    if not isinstance(cfg.label_smoothing, (int, float)) or not 0 <= cfg.label_smoothing < 1:
        raise UserError(f"--label-smoothing {cfg.label_smoothing} is out of range: give a value in [0, 1)")
    if cfg.ema is not None and not 0 < cfg.ema < 1:
        raise UserError(f"--ema {cfg.ema} is out of range: give a decay in (0, 1), e.g. 0.99")
    if not isinstance(cfg.crop_pad, int) or cfg.crop_pad < 0:
        raise UserError(f"--crop-pad {cfg.crop_pad!r} is invalid: give 0 or a positive integer")
    if cfg.target_accuracy is not None and not 0 < cfg.target_accuracy <= 1:
        raise UserError(f"--target-accuracy {cfg.target_accuracy} is not a fraction: give e.g. 0.612 for 61.2%")
    if cfg.time_budget is not None:
        _positive("time-budget", cfg.time_budget, float)
    _positive("evals-per-epoch", cfg.evals_per_epoch, int)
    if cfg.widths is not None and (not isinstance(cfg.widths, list) or not 1 <= len(cfg.widths) <= 16
                                    or not all(isinstance(w, int) and 0 < w <= 8192 for w in cfg.widths)):
        raise UserError(f"--widths {cfg.widths!r} is invalid: give 1 to 16 integers in 1..8192, e.g. 64,256,256")


def _validate_training(cfg) -> None:
    _positive("lr", cfg.lr, float)
    _positive("batch-size", cfg.batch_size, int)
    _positive("epochs", cfg.epochs, int)
    _validate_schedule(cfg)
    _positive("image-size", cfg.image_size, int)
    _positive("save-every", cfg.save_every, int)
    if not isinstance(cfg.keep, int) or cfg.keep < 0:
        raise UserError(f"--keep {cfg.keep!r} is invalid: give 0 or a positive integer")
    if cfg.val_split is not None and not (0 < cfg.val_split < 1):
        raise UserError(f"--val-split {cfg.val_split} is out of range: give a fraction between 0 and 1, e.g. 0.1")
    if cfg.grad_clip is not None:
        _positive("grad-clip", cfg.grad_clip, float)
    for name in ("limit_train", "limit_test", "threads"):
        value = getattr(cfg, name)
        if value is not None:
            _positive(name.replace("_", "-"), value, int)
    if cfg.momentum is not None and not (0.0 <= cfg.momentum < 1.0):
        raise UserError(f"--momentum {cfg.momentum} is out of range: give a value in [0, 1)")
    if cfg.optimizer == "nesterov" and cfg.momentum == 0:
        raise UserError("--optimizer nesterov needs momentum > 0: drop --momentum 0 or use --optimizer sgd")
    if cfg.article_exact and not spec(cfg.model).article_exact:
        accepting = [name for name, s in MODELS_SPECS.items() if s.article_exact]
        raise UserError(f"--article-exact applies to --model {', '.join(accepting)} only: drop it for other models")
    if cfg.weight_decay is not None and not (0 <= cfg.weight_decay < float("inf")):
        raise UserError(f"--weight-decay {cfg.weight_decay} is invalid: give a finite value >= 0")


def _validate_run(cfg) -> None:
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not 0 <= cfg.seed < 2 ** 63:
        raise UserError(f"--seed {cfg.seed!r} is out of range: give a whole number in 0..2**63-1")
    if not isinstance(cfg.workers, int) or isinstance(cfg.workers, bool) or not 0 <= cfg.workers <= 256:
        raise UserError(f"--workers {cfg.workers!r} is invalid: give 0 (decode in the main process) to 256")
    if cfg.image_size > MAX_SIDE:
        raise UserError(f"--image-size {cfg.image_size} is too large: give at most {MAX_SIDE} pixels")
    if cfg.crop_pad > MAX_SIDE:
        raise UserError(f"--crop-pad {cfg.crop_pad} is too large: give fewer pixels than the image side")
    if not (isinstance(cfg.divergence_factor, (int, float)) and 1 < cfg.divergence_factor < float("inf")):
        raise UserError(f"--divergence-factor {cfg.divergence_factor!r} is invalid: give a number > 1, "
                        "e.g. 1000")
    _positive("max-image-mb", cfg.max_image_mb, float)
    _positive("dist-timeout", cfg.dist_timeout, float)
    if not (isinstance(cfg.log_every, (int, float)) and 0 <= cfg.log_every < float("inf")):
        raise UserError(f"--log-every {cfg.log_every!r} is invalid: give seconds >= 0 (0: no progress lines)")
    if cfg.max_image_mb > 1 << 20:
        raise UserError(f"--max-image-mb {cfg.max_image_mb:g} is beyond any image file: give at most {1 << 20}")
    if cfg.threads is not None and cfg.threads > 4 * (os.cpu_count() or 1):
        raise UserError(f"--threads {cfg.threads} is more than 4x this machine's {os.cpu_count()} cores: "
                        "give at most the number of cores")
    if cfg.epochs > MAX_EPOCHS:
        raise UserError(f"--epochs {cfg.epochs} is beyond any run: give at most {MAX_EPOCHS:,}")

def _validate_finetuning(cfg) -> None:

    if not spec(cfg.model).pretrained:
        used = [f for f in ("small_input", "pretrained", "weights") if getattr(cfg, f)]
        if used:
            raise UserError(f"--{used[0].replace('_', '-')} applies to tv:<name> and timm:<name> models, not "
                            f"{cfg.model}: drop it (--init-from RUN starts from another run's weights)")
    if cfg.init_from is not None and cfg.weights:
        raise UserError("--init-from and --weights both name the starting weights: give one of them")
    if cfg.freeze_backbone and cfg.eval_train_mode:
        raise UserError("--eval-train-mode measures with BatchNorm in train mode, which moves a frozen backbone's "
                        "statistics: drop one of --freeze-backbone and --eval-train-mode")
    if cfg.unfreeze_after is not None:
        if not cfg.freeze_backbone:
            raise UserError("--unfreeze-after needs --freeze-backbone: add it, or drop --unfreeze-after")
        if cfg.time_budget:
            raise UserError("--unfreeze-after counts epochs: it needs a known number of epochs, not --time-budget")
        if cfg.epochs < 2:
            raise UserError("--unfreeze-after needs --epochs of at least 2 (frozen epochs, then the rest)")
        if not isinstance(cfg.unfreeze_after, int) or isinstance(cfg.unfreeze_after, bool) \
                or not 0 < cfg.unfreeze_after < cfg.epochs:
            raise UserError(f"--unfreeze-after {cfg.unfreeze_after!r} is out of range: give whole epochs "
                            f"1..{cfg.epochs - 1} (fewer than --epochs)")
    if cfg.head_lr is not None:
        _positive("head-lr", cfg.head_lr, float)
    for flag, value in (("lr", cfg.lr), ("head-lr", cfg.head_lr)):
        if value is not None and value > MAX_LR:
            raise UserError(f"--{flag} {value:g} is beyond any learning rate: give at most {MAX_LR:g}")
    for name in ("weights", "init_from"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise UserError(f"--{name.replace('_', '-')} {value!r} is invalid: give a path")
    if cfg.classes is not None:
        if not isinstance(cfg.classes, list) or not all(isinstance(c, (str, int)) and not isinstance(c, bool)
                                                         and str(c) for c in cfg.classes):
            raise UserError(f"--classes {cfg.classes!r} is invalid: give class names or indices separated by "
                            "commas, e.g. cat,dog or 3,5")
        if len(cfg.classes) < 2 or len({str(c) for c in cfg.classes}) != len(cfg.classes):
            raise UserError(f"--classes {','.join(map(str, cfg.classes))} must name at least two different "
                            "classes")

def _validate_engine(cfg, engine, torch_only_model: bool) -> None:
    """What the chosen engine cannot do (``EngineSpec``): a torch-only model, the options it refuses."""
    if torch_only_model and not engine.every_model:
        origin = f" (from --recipe {cfg.recipe})" if cfg.recipe else ""
        raise UserError(f"--model {cfg.model}{origin} needs the torch engine (BatchNorm, GELU): "
                        f"drop --engine {cfg.engine} or choose another model")
    used = [name for name, off in engine.refuses.items() if getattr(cfg, name) not in (off, None, False)]
    if used:
        flags = ", ".join(f"--{n.replace('_', '-')}" for n in used)
        raise UserError(f"{flags} {'is' if len(used) == 1 else 'are'} torch-engine only: "
                        f"drop it or drop --engine {cfg.engine}")

def _validate_schedule(cfg) -> None:
    if not isinstance(cfg.warmup, (int, float)) or not 0 <= cfg.warmup < 1:
        raise UserError(f"--warmup {cfg.warmup} is out of range: give a fraction in [0, 1)")
    if cfg.warmup_epochs is not None:
        if cfg.warmup:
            raise UserError("--warmup and --warmup-epochs both given: give one of them")
        if cfg.time_budget:
            raise UserError("--warmup-epochs needs a known number of epochs: use --warmup F with --time-budget")
        if not (isinstance(cfg.warmup_epochs, (int, float)) and 0 <= cfg.warmup_epochs < cfg.epochs):
            raise UserError(f"--warmup-epochs {cfg.warmup_epochs!r} is out of range: give 0 <= E < --epochs")
    if cfg.schedule == "step":
        if cfg.time_budget:
            raise UserError("--sched step counts epochs: use cosine or warmup-linear with --time-budget")
        if cfg.decay_epochs is None:
            raise UserError("--sched step needs --decay-epochs N: the lr is multiplied by --decay-rate every N")
    elif cfg.decay_epochs is not None:
        raise UserError(f"--decay-epochs applies to --sched step, not {cfg.schedule}: drop it or use --sched step")
    if cfg.decay_epochs is not None:
        _positive("decay-epochs", cfg.decay_epochs, float)
    if not (isinstance(cfg.decay_rate, (int, float)) and 0 < cfg.decay_rate <= 1):
        raise UserError(f"--decay-rate {cfg.decay_rate!r} is out of range: give a factor in (0, 1], e.g. 0.1")


def check_choice(what: str, value: str, choices) -> None:
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


