"""CPU threads for torch: how many, and a warning when the machine is already busy.

Measured with ``bench/threads.py`` on 2 cores (README, CPU threads): a second
thread speeds the convolutional models up 1.6-1.8x on an idle machine, but
beside one CPU-bound process it makes every model slower than one thread
(fastnet 407 vs 659 img/s, article-cnn 89 vs 146): torch's OpenMP workers spin
while waiting for the core the other process holds. The MLPs gain nothing from
a second thread even when idle. Hence the rule: one thread for models that
declare themselves small; otherwise one per core not already kept busy by
other processes (the 1-minute load average), at least one. OpenMP's passive
wait policy was measured too and rejected: it costs simplenet 64% idle.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger("deepdive")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def busy_cores() -> int:
    """Cores other processes keep busy, by the 1-minute load average (0 where the OS gives none)."""
    try:
        return int(round(os.getloadavg()[0]))
    except (OSError, AttributeError):
        return 0


def default_threads(model: str | None = None) -> int:
    from deepdive.models import MODELS_SPECS

    if model in MODELS_SPECS and MODELS_SPECS[model].small:
        return 1
    return max(1, available_cores() - busy_cores())


def set_threads(threads: int | None, model: str | None = None) -> int:
    import torch

    n = threads or default_threads(model)
    torch.set_num_threads(n)
    return n


def warn_if_oversubscribed(threads: int) -> None:
    """One warning, once the run is valid and about to train, when its threads must share cores."""
    cores, busy = available_cores(), busy_cores()
    if busy and busy + threads > cores:
        log.warning("warning: the machine is busy (load average about %d on %d cores) and this run uses %d "
                    "thread(s): expect it to be slower than on an idle machine", busy, cores, threads)
