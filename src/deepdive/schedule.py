"""Learning-rate schedules as a function of training progress p in [0, 1].

Progress is steps done / total steps, or, for a time-budgeted run, training
seconds elapsed / budget: the schedule then finishes exactly when the budget ends.

- ``constant``: η
- ``warmup-linear``: η·p/w for p < w, then η·(1 − p)/(1 − w) down to 0 (w = warm-up fraction)
- ``onecycle``: η·p/w rising (from η/25), then cosine annealing to ~0, the OneCycle shape
"""
from __future__ import annotations

import math

SCHEDULES = ("constant", "warmup-linear", "onecycle")


def lr_factor(kind: str, progress: float, warmup: float) -> float:
    p = min(max(progress, 0.0), 1.0)
    if kind == "constant":
        return 1.0
    if kind == "warmup-linear":
        if warmup > 0 and p < warmup:
            return p / warmup
        return max(0.0, (1.0 - p) / max(1.0 - warmup, 1e-12))
    if kind == "onecycle":
        start = 1 / 25
        if warmup > 0 and p < warmup:
            return start + (1 - start) * p / warmup
        q = (p - warmup) / max(1.0 - warmup, 1e-12)
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * q))
    raise ValueError(f"unknown schedule {kind!r}")
