"""The ONE place where a run's configuration is resolved.

``resolve_config`` layers, lowest first:

    defaults  <  recipe (--recipe)  <  --config FILE  <  flags given

and ``resolve_resume`` replaces all of these by the run's stored config.json,
refusing any flag that differs unless ``--force`` (which then wins). Everything
below reads the resulting ``TrainConfig``; its resolved form is written into
every run folder, so ``deepdive train --config RUN/config.json`` repeats the run.
The files themselves are read on the storage floor (``storage.config_file``), which hands their values here.
"""
from __future__ import annotations

import time
from pathlib import Path

from deepdive.config.names import DEFAULT_LR
from deepdive.config.recipes import RECIPES, recipe_values
from deepdive.config.train_config import EXCLUSIVE, NOT_ALTERING, TrainConfig
from deepdive.config.validation import check_choice
from deepdive.errors import UserError

def resolve_config(flags: dict, file_values: dict | None = None) -> TrainConfig:
    """defaults < recipe < ``--config`` file < flags given, validated once.

    ``flags`` holds only the options the user gave (the CLI suppresses defaults),
    keyed by TrainConfig field, plus ``synthetic_shape``/``synthetic_classes``; ``file_values`` are a
    ``--config`` file's (``storage.config_file.read_config_file``).
    """
    file_values = dict(file_values or {})
    file_values.pop("out", None)  # a re-run gets a fresh folder unless --out says otherwise
    flags = _fold_synthetic(flags, file_values.get("synthetic"))
    recipe = flags.get("recipe", file_values.get("recipe"))
    layers = []
    if recipe is not None:
        check_choice("recipe", recipe, RECIPES)
        layers.append(recipe_values(recipe, flags.get("device", file_values.get("device", "auto"))))
    layers += [_lr_follows_optimizer(file_values, flags), flags]
    values: dict = {}
    for layer in layers:
        values = _overlay(values, layer)
    cfg = TrainConfig.from_dict(values)
    if not cfg.out:
        cfg.out = str(default_run_dir(cfg.model, cfg.dataset))
    return cfg


def resolve_resume(saved: dict, flags: dict, force: bool = False) -> tuple[TrainConfig, list[str]]:
    """A resumed run's config: the stored one; a flag that differs is refused unless ``force`` makes it win."""
    if "out" in flags:
        raise UserError("--out cannot be combined with --resume: the run continues in its own folder")
    flags = _fold_synthetic(flags, saved.get("synthetic"))
    differences = [f"--{key.replace('_', '-')} {value!r} differs from the run's {saved.get(key)!r}"
                   for key, value in flags.items() if key not in NOT_ALTERING and saved.get(key) != value]
    if differences and not force:
        raise UserError("\n".join(f"{d}: drop it to resume as saved, or add --force to change the run"
                                  for d in differences))
    return TrainConfig.from_dict(_overlay(_lr_follows_optimizer(saved, flags), flags)), differences


def _lr_follows_optimizer(lower: dict, upper: dict) -> dict:
    """A config.json records the resolved lr. When ``upper`` changes the optimizer and gives no lr, an lr that
    was the old optimizer's default (and no recipe's choice) is dropped, so the new optimizer's default
    applies: ``--config RUN/config.json --opt adadelta`` trains Adadelta at 1.0, not at Adam's 1e-3."""
    if "optimizer" in upper and "lr" not in upper and lower.get("recipe") is None and "lr" in lower \
            and lower["lr"] == DEFAULT_LR.get(lower.get("optimizer", "adam")):
        return {k: v for k, v in lower.items() if k != "lr"}
    return lower


def _overlay(lower: dict, upper: dict) -> dict:
    """``upper`` on top of ``lower``; of an exclusive pair, the one ``upper`` sets clears the other."""
    values = {**lower, **upper}
    for a, b in EXCLUSIVE:
        if a in upper and b not in upper:
            values.pop(b, None)
        elif b in upper and a not in upper:
            values.pop(a, None)
    return values


def _fold_synthetic(flags: dict, base: dict | None) -> dict:
    """--synthetic-shape/--synthetic-classes are parts of the ``synthetic`` dict."""
    if "synthetic_shape" not in flags and "synthetic_classes" not in flags:
        return dict(flags)
    flags = dict(flags)
    synthetic = dict(base or TrainConfig.__dataclass_fields__["synthetic"].default_factory())
    if "synthetic_shape" in flags:
        synthetic["shape"] = list(flags.pop("synthetic_shape"))
    if "synthetic_classes" in flags:
        synthetic["classes"] = flags.pop("synthetic_classes")
    flags["synthetic"] = synthetic
    return flags


def default_run_dir(model: str, dataset: str, root: str = "runs") -> Path:
    """runs/<time>-<model>-<dataset>, numbered when that folder exists (a run names its folder itself)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{model.replace(':', '-')}-{dataset}"  # tv:resnet18 -> tv-resnet18
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path
