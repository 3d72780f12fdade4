"""One schema per file deepdive reads back: config.json, model.json, summary.json, metrics.jsonl, state.pt.

Every value read from a file is checked here, at the boundary, before the
rest of the code sees it: wrong types, missing keys, absurd sizes and
non-finite numbers become one ``UserError`` line naming the file, the key and
the fix, instead of a traceback somewhere deep in training. Ranges that
depend on the option (a learning rate must be positive, ...) stay with the
option in ``TrainConfig.validate``; types and shapes are checked here.

A schema is plain data: a type (``int`` excludes ``bool``; ``float`` means a
finite number), ``Opt(s)``, ``ListOf(s, lo, hi)``, ``MapOf(s)``,
``Fields({...}, required)``, ``Tensor`` or ``Check(s, predicate, words)``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

from deepdive.config import MAX_SIDE
from deepdive.errors import UserError

RUN_DAMAGED = "the run folder is damaged; retrain it (or restore the file deepdive wrote)"


@dataclass(frozen=True)
class Opt:
    inner: Any


@dataclass(frozen=True)
class ListOf:
    inner: Any
    lo: int = 0
    hi: int = 1 << 20


@dataclass(frozen=True)
class MapOf:
    inner: Any


@dataclass(frozen=True)
class Fields:
    fields: dict
    required: frozenset = frozenset()
    open: bool = True  # keys beyond ``fields`` allowed (and not checked)


@dataclass(frozen=True)
class Check:
    inner: Any
    ok: Callable[[Any], bool]
    words: str


class _TensorType:
    """A torch tensor (checked without importing torch when no tensor is expected)."""


Tensor = _TensorType()

_WORDS = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false",
          dict: "an object", list: "a list", type(None): "null"}


def describe(schema) -> str:
    if isinstance(schema, Opt):
        return f"{describe(schema.inner)} or null"
    if isinstance(schema, ListOf):
        return f"a list of {schema.lo}..{schema.hi} items, each {describe(schema.inner)}"
    if isinstance(schema, (MapOf, Fields)):
        return "an object"
    if isinstance(schema, Check):
        return schema.words
    if schema is Tensor:
        return "a tensor"
    return _WORDS.get(schema, getattr(schema, "__name__", str(schema)))


def _shown(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (int, float, str)):
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    text = " ".join(repr(value).split())  # one line, whatever the value
    return text if len(text) <= 40 else text[:37] + "..."


def check(value, schema, where: str, fix: str, path: str = "") -> None:
    """Raise ``UserError`` unless ``value`` fits ``schema``; ``where`` names the file, ``path`` the key."""
    def fail(what: str) -> None:
        key = f" {path}" if path else ""
        raise UserError(f"{where}:{key} {what}: {fix}")

    if isinstance(schema, Opt):
        if value is not None:
            check(value, schema.inner, where, fix, path)
    elif isinstance(schema, Check):
        check(value, schema.inner, where, fix, path)
        if not schema.ok(value):
            fail(f"should be {schema.words}, not {_shown(value)}")
    elif isinstance(schema, ListOf):
        if not isinstance(value, (list, tuple)):
            fail(f"should be a list, not {_shown(value)}")
        if not schema.lo <= len(value) <= schema.hi:
            fail(f"has {len(value)} items, should have {schema.lo}..{schema.hi}")
        for i, item in enumerate(value):
            check(item, schema.inner, where, fix, f"{path}[{i}]")
    elif isinstance(schema, MapOf):
        if not isinstance(value, dict):
            fail(f"should be an object, not {_shown(value)}")
        for key, item in value.items():
            if not isinstance(key, str):
                fail(f"has a key {_shown(key)} that is not a string")
            check(item, schema.inner, where, fix, f"{path}.{key}" if path else key)
    elif isinstance(schema, Fields):
        if not isinstance(value, dict):
            fail(f"should be an object, not {_shown(value)}")
        missing = sorted(schema.required - set(value))
        if missing:
            fail(f"lacks {', '.join(missing)}")
        if not schema.open:
            extra = sorted(str(k) for k in set(value) - set(schema.fields))
            if extra:
                fail(f"has unexpected key(s) {', '.join(extra[:3])}")
        for key, sub in schema.fields.items():
            if key in value:
                check(value[key], sub, where, fix, f"{path}.{key}" if path else key)
    elif schema is Tensor:
        import torch
        if not isinstance(value, torch.Tensor):
            fail(f"should be a tensor, not {_shown(value)}")
    elif schema is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            fail(f"should be a finite number, not {_shown(value)}")
    elif schema is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(f"should be an integer, not {_shown(value)}")
    elif isinstance(schema, tuple):
        if not any(_fits(value, s) for s in schema):
            fail(f"should be {' or '.join(describe(s) for s in schema)}, not {_shown(value)}")
    elif not isinstance(value, schema):
        fail(f"should be {describe(schema)}, not {_shown(value)}")


def _fits(value, schema) -> bool:
    try:
        check(value, schema, "", "")
    except UserError:
        return False
    return True


# -- the files ---------------------------------------------------------------------------------------------------
MAX_CLASSES = 100_000
Count = Check(int, lambda v: v >= 0, "an integer >= 0")
Positive = Check(int, lambda v: v > 0, "an integer > 0")
Shape = Check(ListOf(int, 3, 3), lambda v: v[0] in (1, 3) and all(1 <= s <= MAX_SIDE for s in v[1:]),
              f"[C, H, W] with C 1 or 3 and sides in 1..{MAX_SIDE}")


@functools.lru_cache(maxsize=1)
def _config_schema() -> Fields:
    """config.json: the type of every TrainConfig field, read from its annotation (built once)."""
    import dataclasses

    from deepdive.config import TrainConfig

    kinds = {"str": str, "float": float, "int": int, "bool": bool, "list": list, "dict": dict}
    fields = {}
    for f in dataclasses.fields(TrainConfig):
        parts = [p.strip() for p in str(f.type).split("|")]
        inner = tuple(kinds[p] for p in parts if p != "None")
        inner = inner[0] if len(inner) == 1 else inner
        fields[f.name] = Opt(inner) if "None" in parts else inner
    fields["widths"] = Opt(ListOf(Check(int, lambda v: 1 <= v <= 8192, "an integer in 1..8192"), 1, 16))
    fields["synthetic"] = Fields({"shape": Shape, "classes": Check(int, lambda v: 2 <= v <= MAX_CLASSES,
                                                                   f"an integer in 2..{MAX_CLASSES}"),
                                  "train": Positive, "test": Positive},
                                 frozenset({"shape", "classes", "train", "test"}), open=False)
    return Fields(fields)


def check_config(values: dict, where: str = "config") -> None:
    check(values, _config_schema(), where, "fix the value, or give the config.json of a run folder")


def check_model_info(info, where: str) -> None:
    """model.json: what rebuilding the model needs, nothing a model constructor could choke on."""
    from deepdive.config import ENGINES, TTA_MODES
    from deepdive.models import MODELS
    from deepdive.models.external import split_name

    schema = Fields({
        "model": Check(str, lambda v: v in MODELS or split_name(v) is not None,
                       f"one of {', '.join(MODELS)}, tv:<name> or timm:<name>"),
        "engine": Check(str, lambda v: v in ENGINES, f"one of {', '.join(ENGINES)}"),
        "classes": ListOf(str, 2, MAX_CLASSES),
        "input_shape": Shape,
        "mean": ListOf(float, 1, 3),
        "std": ListOf(Check(float, lambda v: v > 0, "a number > 0"), 1, 3),
        "options": dict,
        "channels_last": bool,
        "article_exact": bool,
        "resize_mode": Check(str, lambda v: v in ("crop", "squash"), "crop or squash"),  # absent: squash (older)
        # how the run evaluates the model (absent in older runs: their config.json says; loading.model_settings)
        "tta": Check(str, lambda v: v in TTA_MODES, f"one of {', '.join(TTA_MODES)}"),
        "amp": bool,
        "ema": bool,  # model.safetensors holds the exponential moving average of the weights
    }, frozenset({"model", "classes", "input_shape", "mean", "std"}))
    check(info, schema, where, RUN_DAMAGED)
    channels = info["input_shape"][0]
    for key in ("mean", "std"):
        if len(info[key]) != channels:
            check(info[key], ListOf(float, channels, channels), where, RUN_DAMAGED, key)
    from deepdive.models import spec as model_spec
    spec = model_spec(info["model"])
    allowed = set(spec.config_options) | set(spec.defaults) | ({"article_exact"} if spec.article_exact else set())
    config = _config_schema().fields
    options = Fields({k: config[k] for k in allowed}, open=False)
    check(info.get("options", {}), options, where, RUN_DAMAGED, "options")


def check_summary(summary, where: str) -> None:
    schema = Fields({"status": str, "epochs": Count, "resume_forced": ListOf(str),
                     "test_accuracy": Opt(float)})
    check(summary, schema, where, RUN_DAMAGED)


def check_metrics_record(record, where: str) -> None:
    check(record, Fields({"epoch": Positive, "train_loss": float}, frozenset({"epoch"})), where, RUN_DAMAGED)


_LOOP = Fields({
    "epoch": Count, "step_in_epoch": Count, "global_step": Count, "images_seen": Count,
    "order": Opt(Tensor), "loss_sum": float, "seen": Count, "epoch_train_start": float,
    "best": Fields({"metric": str, "value": Opt(float), "epoch": Opt(int)}, frozenset({"metric", "value", "epoch"})),
    "target": Opt(dict), "finished_early": bool, "clocks": MapOf(float), "first_loss": Opt(float),
    "block_loss_sum": float, "block_steps": Count, "last_block_loss": Opt(float),
}, frozenset({"epoch", "step_in_epoch", "global_step", "order"}))
_RNG = Fields({
    "python": Fields({"version": int, "internal": ListOf(int, 625, 625), "gauss": Opt(float)},
                     frozenset({"version", "internal", "gauss"})),
    "numpy": Fields({"kind": str, "keys": Tensor, "pos": int, "has_gauss": int, "cached_gaussian": float},
                    frozenset({"kind", "keys", "pos", "has_gauss", "cached_gaussian"})),
    "torch": Tensor, "data": Tensor, "cuda": list,
}, frozenset({"python", "numpy", "torch", "data"}))


def check_state(state, where: str) -> None:
    """state.pt's structure (format 2: the loop's fields under "loop"; format 1: at the top level)."""
    from deepdive.state import READABLE_FORMATS

    fix = "delete it to restart the run from its last good files, or restore the file deepdive wrote"
    check(state, Fields({"format": Check(int, lambda v: v in READABLE_FORMATS,
                                         f"one of {READABLE_FORMATS}")}, frozenset({"format"})), where, fix)
    ema = Fields({"updates": Count, "weights": MapOf(Tensor)}, frozenset({"updates", "weights"}), open=False)
    augment = Fields({"generator": Tensor}, frozenset({"generator"}), open=False)
    top = Fields({"model": MapOf(Tensor), "optimizer": dict, "rng": _RNG, "ema": Opt(ema), "augment": Opt(augment)},
                 frozenset({"model", "optimizer", "rng"}))
    check(state, top, where, fix)
    if state["format"] >= 2:
        check(state, Fields({"loop": dict}, frozenset({"loop"})), where, fix)
    check(state["loop"] if state["format"] >= 2 else state, _LOOP, where, fix, "loop" if state["format"] >= 2 else "")
