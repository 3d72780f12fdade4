"""CPU threads for torch: how many, and a warning when the machine is already busy."""
from __future__ import annotations

import logging
import os

log = logging.getLogger("deepdive")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_threads(model: str | None = None) -> int:
    """All cores (see bench/threads.py for the measurements behind this rule)."""
    return available_cores()


def set_threads(threads: int | None, model: str | None = None) -> int:
    import torch

    n = threads or default_threads(model)
    torch.set_num_threads(n)
    return n


def warn_if_oversubscribed(threads: int) -> None:
    """One warning when other processes already keep the cores busy (1-minute load average)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return
    cores = available_cores()
    if load + threads > cores + 0.5 and load >= 1.0:
        log.warning("warning: the machine is busy (load average %.1f on %d cores) and this run adds %d thread(s): "
                    "expect it to be slower than the README's figures", load, cores, threads)
