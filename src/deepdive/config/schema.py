"""Schemas as plain data, and the one checker of values against them.

Every value read from a file is checked at the boundary (storage/schemas.py, config/config_schema.py),
before the rest of the code sees it: wrong types, missing keys, absurd sizes and non-finite numbers become
one ``UserError`` line naming the file, the key and the fix, instead of a traceback somewhere deep in
training. Ranges that depend on the option (a learning rate must be positive, ...) stay with the option in
``config/validation.py``; types and shapes are checked here.

A schema is plain data: a type (``int`` excludes ``bool``; ``float`` means a
finite number), ``Opt(s)``, ``ListOf(s, lo, hi)``, ``MapOf(s)``,
``Fields({...}, required)``, ``Tensor`` or ``Check(s, predicate, words)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from deepdive.config.names import MAX_CLASSES, MAX_SIDE
from deepdive.errors import UserError

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
        if not any(fits(value, s) for s in schema):
            fail(f"should be {' or '.join(describe(s) for s in schema)}, not {_shown(value)}")
    elif not isinstance(value, schema):
        fail(f"should be {describe(schema)}, not {_shown(value)}")


def fits(value, schema) -> bool:
    try:
        check(value, schema, "", "")
    except UserError:
        return False
    return True


# -- shared by config.json and the run's other files -------------------------------------------------------
Count = Check(int, lambda v: v >= 0, "an integer >= 0")
Positive = Check(int, lambda v: v > 0, "an integer > 0")
Shape = Check(ListOf(int, 3, 3), lambda v: v[0] in (1, 3) and all(1 <= s <= MAX_SIDE for s in v[1:]),
              f"[C, H, W] with C 1 or 3 and sides in 1..{MAX_SIDE}")

SYNTHETIC = Fields({"shape": Shape, "classes": Check(int, lambda v: 2 <= v <= MAX_CLASSES, f"an integer in 2..{MAX_CLASSES}"),
                    "train": Positive, "test": Positive}, frozenset({"shape", "classes", "train", "test"}), open=False)
