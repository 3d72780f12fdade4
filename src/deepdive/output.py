"""What a command prints: standard JSON and text a terminal can show."""
from __future__ import annotations

import json
import math


def strict_json(obj) -> str:
    """JSON as the standard has it: a NaN or infinite figure (a model whose weights are NaN) becomes null,
    never the bare ``NaN`` that strict parsers reject."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value
    return json.dumps(clean(obj), allow_nan=False)


def printable(text: str) -> str:
    """File names that are not UTF-8 reach Python as lone surrogates: show their bytes as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
