"""config.json's schema: the type of every ``TrainConfig`` field, read from its annotation."""
from __future__ import annotations

import dataclasses
import functools

from deepdive.config.schema import SYNTHETIC, Check, Fields, ListOf, Opt, check
from deepdive.config.train_config import TrainConfig


@functools.lru_cache(maxsize=1)
def config_schema() -> Fields:
    """config.json: the type of every TrainConfig field, read from its annotation (built once)."""
    kinds = {"str": str, "float": float, "int": int, "bool": bool, "list": list, "dict": dict}
    fields = {}
    for f in dataclasses.fields(TrainConfig):
        parts = [p.strip() for p in str(f.type).split("|")]
        inner = tuple(kinds[p] for p in parts if p != "None")
        inner = inner[0] if len(inner) == 1 else inner
        fields[f.name] = Opt(inner) if "None" in parts else inner
    fields["widths"] = Opt(ListOf(Check(int, lambda v: 1 <= v <= 8192, "an integer in 1..8192"), 1, 16))
    fields["synthetic"] = SYNTHETIC
    return Fields(fields)


def check_config(values: dict, where: str = "config") -> None:
    check(values, config_schema(), where, "fix the value, or give the config.json of a run folder")
