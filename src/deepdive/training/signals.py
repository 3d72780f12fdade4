"""Turn SIGINT/SIGTERM into an ``Interrupted`` exception at a safe point.

The handler only records the signal in a ``StopFlag``; the training loop checks
it between steps, so the current step finishes and the run is closed cleanly.
The flag exists before the trainer, which receives it when it is built.
"""
from __future__ import annotations

import contextlib
import signal

from deepdive.errors import Interrupted


class StopFlag:
    def __init__(self) -> None:
        self.signum: int | None = None

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)


@contextlib.contextmanager
def catch_stop_signals(flag: StopFlag | None = None):
    flag = flag or StopFlag()

    def handler(signum, frame):
        if flag.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        flag.signum = signum

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
