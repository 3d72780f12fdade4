"""The ways a command can fail, mapped to exit codes by the CLI.

``UserError`` is bad input or usage: the CLI prints its message as one line on
stderr and exits 2. ``RunFailed`` is a run that started and could not finish
(diverged, disk full): exit 1. ``WriteFailed`` is the failed write behind many
a ``RunFailed``: it names the file and the free space left beside it.
"""
from __future__ import annotations

import shutil
from pathlib import Path


class UserError(Exception):
    """Bad input: the message names the problem and the fix (exit 2)."""


class RunFailed(Exception):
    """A run that began and failed (exit 1)."""


class WriteFailed(RunFailed):
    """Writing ``path`` failed (disk full, file too large, read-only, ...), whatever library raised it."""

    def __init__(self, path: str | Path, cause: BaseException):
        self.path = Path(path)
        self.reason = getattr(cause, "strerror", None) or first_line(cause, None)
        super().__init__(f"writing {self.path} failed ({self.reason[:200]}; {free_space(self.path.parent)} free "
                         "there): free disk space or choose another --out")


def free_space(folder: str | Path) -> str:
    """Free bytes on the disk holding ``folder``, for people (e.g. '1.2 GB')."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown space"
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if free < 1000 or unit == "TB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1000
    return "unknown space"


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; ``signum`` picks the exit code (130 or 143)."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


def first_line(exc: BaseException, limit: int | None = 160) -> str:
    """What a library's exception says, as one short line for an error message: its first line (its type's
    name when it says nothing), cut at ``limit`` characters."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line if limit is None else line[:limit]
