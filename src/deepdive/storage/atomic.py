"""Atomic file writes: temp file in the same folder, fsync, rename.

A crash at any instant leaves either the old complete file or the new complete
file, never a torn one: ``os.replace`` within one folder is atomic on POSIX.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from deepdive.errors import WriteFailed


def write_atomic(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` to fill a temp file beside ``path``, then move it into place.

    Any failure of the write itself - ``OSError``, or whatever the writing
    library wraps it in (safetensors' ``SafetensorError``, torch's
    ``RuntimeError``) - comes out as ``WriteFailed`` naming ``path``; the temp
    file is removed and the old ``path`` is untouched.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise WriteFailed(path, exc) from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets what open() would have given it
        os.replace(tmp, path)
    except BaseException as exc:
        with _suppress():
            os.unlink(tmp)
        if isinstance(exc, Exception) and not isinstance(exc, WriteFailed):
            raise WriteFailed(path, exc) from None
        raise
    _fsync_dir(path.parent)


TEMP_SUFFIX = ".tmp"


def is_temp_file(name: str) -> bool:
    """A name ``write_atomic`` gives its temp files (left behind only when the process was killed mid-write)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and name.count(".") >= 3


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    write_atomic(path, write)


def write_json_atomic(path: str | Path, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True
