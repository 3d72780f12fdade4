"""Reading a file whose size nobody promised: never more than a ceiling, never allocated up front.

``open(...).read(n)`` allocates n bytes before reading, and a path may name
something that never ends (``/dev/zero``, a FIFO): the reads here take what
the file holds, a megabyte at a time, and stop just past the ceiling.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from deepdive.errors import UserError

CHUNK = 1 << 20
KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def open_regular(path: str | Path, fix: str):
    """``path`` opened for reading in binary, if it is a regular file; anything else (a FIFO that would block
    the read forever, a device, a socket, a folder) is one ``UserError`` ending in ``fix``. The file is opened
    without blocking and checked on its descriptor, so a FIFO swapped in after a check cannot hang the read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((words for test, words in KINDS if test(mode)), "not a regular file")
            raise UserError(f"{path} is {kind}, not a file: {fix}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | Path, limit: int, fix: str) -> bytes:
    """The bytes of ``path``, or one ``UserError`` (ending in ``fix``) when there are more than ``limit``."""
    path = Path(path)
    parts, held = [], 0
    with open_regular(path, fix) as f:
        while held <= limit:
            chunk = f.read(min(CHUNK, limit + 1 - held))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            held += len(chunk)
    raise UserError(f"{path} is larger than {limit / 1e6:.0f} MB, far larger than such a file is: {fix}")


def output_file(path: str | Path, suffixes: tuple[str, ...], flag: str = "--out") -> Path:
    """A file a command may write: checked before any work, so a bad path is one line (exit 2), not a
    failed write at the end. Its folder must exist and be writable; its suffix must be one of
    ``suffixes`` (the format written is the one the name says)."""
    import os

    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {path}: the file name must end in {' or '.join(suffixes)} (the format written)")
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder: give a file name, e.g. {path / ('figure' + suffixes[0])}")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: the folder {folder} does not exist: create it or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: the folder {folder} is not writable: choose another path")
    return path
