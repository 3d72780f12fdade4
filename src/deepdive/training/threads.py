"""CPU threads for torch: how many, and a warning when the machine is already busy.

Measured with ``bench/threads.py`` on 2 cores (README, CPU threads): a second
thread speeds the convolutional models up 1.6-1.8x on an idle machine, but
beside one CPU-bound process it makes every model slower than one thread
(fastnet 407 vs 659 img/s, article-cnn 89 vs 146): torch's OpenMP workers spin
while waiting for the core the other process holds. The MLPs gain nothing from
a second thread even when idle. Hence the rule: one thread for models that
declare themselves small; otherwise one per core not already kept busy by
other processes, at least one. "Busy" is measured once at start over a tenth
of a second from /proc/stat (the load average lags a minute behind: right after
another job ends it would still count that job's cores as taken). OpenMP's passive
wait policy was measured too and rejected: it costs simplenet 64% idle.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger("deepdive")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_times(stat: str = "/proc/stat") -> tuple[float, float] | None:
    """(busy, total) CPU time of the whole machine so far, in clock ticks; None where unreadable."""
    try:
        with open(stat) as f:
            return parse_cpu_line(f.readline())
    except (OSError, ValueError):
        return None


def parse_cpu_line(line: str) -> tuple[float, float] | None:
    """/proc/stat's first line: user nice system idle iowait irq softirq steal ... (ticks)."""
    fields = [float(v) for v in line.split()[1:]]
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores(window: float = 0.1, stat: str = "/proc/stat") -> int:
    """Cores other processes keep busy now: the machine's busy share over ``window`` seconds, in cores
    (this process sleeps meanwhile). Falls back to the 1-minute load average without /proc/stat."""
    import time

    first = cpu_times(stat)
    if first is None:
        try:
            return int(round(os.getloadavg()[0]))
        except (OSError, AttributeError):
            return 0
    time.sleep(window)
    second = cpu_times(stat)
    if second is None or second[1] <= first[1]:
        return 0
    share = (second[0] - first[0]) / (second[1] - first[1])
    return int(round(share * available_cores()))


def default_threads(model: str | None = None, busy: int | None = None) -> int:
    from deepdive.config.specs import MODELS_SPECS

    if model in MODELS_SPECS and MODELS_SPECS[model].small:
        return 1
    return max(1, available_cores() - (busy_cores() if busy is None else busy))


def set_threads(threads: int | None, model: str | None = None, busy: int | None = None) -> int:
    import torch

    n = threads or default_threads(model, busy)
    torch.set_num_threads(n)
    return n


def warn_if_oversubscribed(threads: int, busy: int | None = None) -> None:
    """One warning, once the run is valid and about to train, when its threads must share cores."""
    cores, busy = available_cores(), busy_cores() if busy is None else busy
    if busy and busy + threads > cores:
        log.warning("warning: the machine is busy (other processes keep about %d of %d cores busy) and this run "
                    "uses %d thread(s): expect it to be slower than on an idle machine", busy, cores, threads)
