"""The decoded-dataset cache: decode once, reload as uint8 tensors in a blink.

Entries live in ``$DEEPDIVE_CACHE`` (default ``~/.cache/deepdive``), never beside
the source data, keyed by a SHA-256 over the source files' names and *contents*
plus the decoding parameters, so an edited, added or removed file means a new
key and a rebuild. Entries hold plain tensors and load with
``torch.load(weights_only=True)``. Warnings the decoder gave (e.g. skipped
files) are stored and repeated on every load.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

from deepdive.storage.atomic import write_atomic
from deepdive.errors import WriteFailed

log = logging.getLogger("deepdive")


def cache_dir() -> Path:
    return Path(os.environ.get("DEEPDIVE_CACHE") or Path.home() / ".cache" / "deepdive")


CHUNK = 1 << 20  # files are hashed a megabyte at a time: memory stays flat whatever their size


def content_key(kind: str, files: list[Path], root: Path, params: dict, max_bytes: int | None = None) -> str:
    """SHA-256 over names, contents and parameters. A file above ``max_bytes`` is keyed by its size and
    modification time instead: the reader will not read it either (an image above --max-image-mb)."""
    digest = hashlib.sha256(f"{kind}|{sorted(params.items())}".encode())
    for path in sorted(files):
        digest.update(os.fsencode(os.path.relpath(path, root)) + b"\0")
        digest.update(file_digest(path, max_bytes))
    return digest.hexdigest()[:32]


def file_digest(path: Path, max_bytes: int | None = None) -> bytes:
    stat = os.stat(path)
    if max_bytes is not None and stat.st_size > max_bytes:
        return hashlib.sha256(f"unread|{stat.st_size}|{stat.st_mtime_ns}".encode()).digest()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.digest()


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        if not getattr(record, "once", False):  # said when the files are first read, not again from the cache
            self.messages.append(record.getMessage())


def cached(kind: str, files: list[Path], root: Path, params: dict, build: Callable[[], tuple],
           max_bytes: int | None = None) -> tuple:
    """``build()`` -> (train, test, classes), through the cache.

    ``build`` may return a fourth item, a dict of extras (more splits, or counts as {str: int}), stored and
    returned with the rest: an image folder's val/ and the conversions it made."""
    import torch

    from deepdive.data.pipeline import Split

    path = cache_dir() / f"{kind}-{content_key(kind, files, root, params, max_bytes)}.pt"
    if path.is_file():
        try:
            from deepdive.storage.state_file import check_stored_zip
            check_stored_zip(path)
            entry = torch.load(path, map_location="cpu", weights_only=True)
            train, test = (Split(entry["train_images"], entry["train_labels"]),
                           Split(entry["test_images"], entry["test_labels"]))
            classes = list(entry["classes"])
            extras = _unpack(entry["extras"]) if "extras" in entry else None
            splits = [train, test] + [v for v in (extras or {}).values() if isinstance(v, Split)]
            if not all(isinstance(c, str) for c in classes) or any(
                    len(s) and not 0 <= int(s.labels.min()) <= int(s.labels.max()) < len(classes) for s in splits):
                raise ValueError("labels outside the class list")
            for message in entry["warnings"]:
                log.warning("%s", message)
            return (train, test, classes) if extras is None else (train, test, classes, extras)
        except Exception as exc:  # a damaged entry is rebuilt, never trusted (UserError included)
            log.warning("warning: ignoring unreadable cache entry %s (%s)", path, type(exc).__name__)
    collect = _Collect()
    log.addHandler(collect)
    try:
        built = build()
    finally:
        log.removeHandler(collect)
    train, test, classes = built[:3]
    entry = {"train_images": train.images, "train_labels": train.labels, "test_images": test.images,
             "test_labels": test.labels, "classes": list(classes), "warnings": collect.messages}
    if len(built) > 3:
        entry["extras"] = _pack(built[3])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: torch.save(entry, tmp))
    except (OSError, WriteFailed) as exc:  # an unwritable cache costs speed, not correctness
        reason = exc.reason if isinstance(exc, WriteFailed) else exc.strerror or exc
        log.warning("warning: could not write the dataset cache %s (%s)", path, reason)
    return built


def _pack(extras: dict) -> dict:
    from deepdive.data.pipeline import Split

    return {k: {"images": v.images, "labels": v.labels} if isinstance(v, Split) else dict(v) for k, v in extras.items()}


def _unpack(packed) -> dict:
    """The stored extras, checked: splits rebuilt (Split checks their tensors), counts {str: int}."""
    from deepdive.data.pipeline import Split

    extras = {}
    for key, value in packed.items():
        if isinstance(value, dict) and set(value) == {"images", "labels"}:
            extras[key] = Split(value["images"], value["labels"])
        elif isinstance(value, dict) and all(isinstance(k, str) and type(n) is int and n >= 0
                                             for k, n in value.items()):
            extras[key] = value
        else:
            raise ValueError(f"extra {key!r} is neither a split nor counts")
    return extras
