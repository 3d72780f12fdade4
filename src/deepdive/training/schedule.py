"""Learning-rate schedules as a function of training progress p in [0, 1].

Progress is steps done / total steps, or, for a time-budgeted run, training
seconds elapsed / budget: the schedule then finishes exactly when the budget ends.
With a warm-up fraction w > 0 every schedule but ``onecycle`` first rises
linearly from 0: η·p/w for p < w.

- ``constant``: η
- ``warmup-linear``: after the warm-up, η·(1 − p)/(1 − w), down to 0 at the end
- ``cosine``: after the warm-up, η·½(1 + cos(π·q)), q = (p − w)/(1 − w): cosine annealing to 0
- ``step``: η·r^⌊e/d⌋ after the warm-up, e the epochs done, d = ``--decay-epochs``, r = ``--decay-rate``
- ``onecycle``: η·p/w rising (from η/25), then cosine annealing to ~0, the OneCycle shape
"""
from __future__ import annotations

from deepdive.config.names import SCHEDULES

import math



def lr_factor(kind: str, progress: float, warmup: float, epochs: float = 1.0, decay_epochs: float | None = None,
              decay_rate: float = 0.1) -> float:
    """The multiplier of the base learning rate at ``progress`` (``epochs``: the run's length, for ``step``)."""
    p = min(max(progress, 0.0), 1.0)
    if kind == "onecycle":
        start = 1 / 25
        if warmup > 0 and p < warmup:
            return start + (1 - start) * p / warmup
        q = (p - warmup) / max(1.0 - warmup, 1e-12)
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * q))
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}")
    if warmup > 0 and p < warmup:
        return p / warmup
    q = (p - warmup) / max(1.0 - warmup, 1e-12)
    if kind == "warmup-linear":
        return max(0.0, (1.0 - p) / max(1.0 - warmup, 1e-12))
    if kind == "cosine":
        return 0.5 * (1 + math.cos(math.pi * q))
    if kind == "step":
        return decay_rate ** math.floor(p * epochs / decay_epochs + 1e-9)
    return 1.0
