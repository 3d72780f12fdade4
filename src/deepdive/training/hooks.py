"""Named points in the loop where a test (or a tool) can act: no test depends on timing.

The loop calls ``hooks(point, n)`` at:

- ``"step", n``: global step n has finished (before the stop flag is checked);
- ``"written", n``: epoch n's weights and metrics are written, state.pt not yet;
- ``"checkpoint", n``: epoch n's state.pt is written.

The loop calls only the hook it is given (``run_training(hooks=...)``; none by default).
``pause_hook_from_env``, a debugging aid the CLI's ``train`` command passes
(``run_training(make_hooks=...)``), builds the hook the tests drive from outside: with
``DEEPDIVE_PAUSE_AT=POINT:N`` and ``DEEPDIVE_PAUSE_FILE=PATH`` the process writes PATH
when it reaches that point and waits there until a signal arrives, so a test can
SIGKILL it, or SIGINT it, at exactly that point - or until the test deletes PATH,
and the run goes on as if it had never paused. PATH holds the point and the process id.

Under torchrun every process reads the same variables: ``DEEPDIVE_PAUSE_RANK=R`` makes
only the process of rank R pause, and only in torchrun's first attempt
(TORCHELASTIC_RESTART_COUNT 0), so that a restarted run goes past the point.
"""
from __future__ import annotations

import os
import time
from typing import Callable

POINTS = ("step", "written", "checkpoint")
Hook = Callable[[str, int], None]


def no_hook(point: str, n: int) -> None:
    return None


def pause_hook_from_env(stop) -> Hook:
    spec, marker = os.environ.get("DEEPDIVE_PAUSE_AT"), os.environ.get("DEEPDIVE_PAUSE_FILE")
    if not spec or not marker:
        return no_hook
    rank = os.environ.get("DEEPDIVE_PAUSE_RANK")
    if rank is not None and (os.environ.get("RANK", "0") != rank
                             or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0"):
        return no_hook
    where, _, number = spec.partition(":")
    if where not in POINTS or not number.isdigit():
        from deepdive.errors import UserError
        raise UserError(f"DEEPDIVE_PAUSE_AT={spec!r} is invalid: give POINT:N with POINT one of {', '.join(POINTS)}")

    def pause(point: str, n: int) -> None:
        if point == where and n == int(number):
            with open(marker, "w") as f:
                f.write(f"{point}:{n} {os.getpid()}\n")
            while stop.signum is None and os.path.exists(marker):  # SIGKILL ends the process here;
                time.sleep(0.01)  # SIGINT/SIGTERM set the flag; deleting the marker lets the run go on
    return pause
