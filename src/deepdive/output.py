"""What a command prints: standard JSON and text a terminal can show."""
from __future__ import annotations

import json
import math
import re


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


# Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts "clear the screen", "set the
# title"), DEL, and the bidirectional overrides and isolates that reorder what follows (U+202E shows "gpj.exe" as
# "exe.jpg"). Text from files - class names, file names - goes through ``printable`` before any terminal.
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` as a terminal can show it without acting on it: file names that are not UTF-8 (lone surrogates)
    as their bytes \\xNN, control characters and bidirectional overrides as \\xNN / \\uNNNN escapes."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _HIDDEN.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
