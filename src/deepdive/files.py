"""Reading a file whose size nobody promised: never more than a ceiling, never allocated up front.

``open(...).read(n)`` allocates n bytes before reading, and a path may name
something that never ends (``/dev/zero``, a FIFO): the reads here take what
the file holds, a megabyte at a time, and stop just past the ceiling.
"""
from __future__ import annotations

from pathlib import Path

from deepdive.errors import UserError

CHUNK = 1 << 20


def read_bounded(path: str | Path, limit: int, fix: str) -> bytes:
    """The bytes of ``path``, or one ``UserError`` (ending in ``fix``) when there are more than ``limit``."""
    path = Path(path)
    parts, held = [], 0
    with open(path, "rb") as f:
        while held <= limit:
            chunk = f.read(min(CHUNK, limit + 1 - held))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            held += len(chunk)
    raise UserError(f"{path} is larger than {limit / 1e6:.0f} MB, far larger than such a file is: {fix}")
