"""Image-folder datasets: ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``.

Any file PIL opens is converted to RGB and resized to ``image_size`` square.
Class names are the sorted folder names of the train split; the test split must
use the same ones. Files PIL cannot read are skipped with one warning (a count
and the first few names), or refused with ``strict`` - in memory and when
streaming alike. A file larger than ``--max-image-mb`` is unreadable without
being read, and so is an image PIL flags as a decompression bomb (more than
``Image.MAX_IMAGE_PIXELS`` pixels): its warning is turned into that error
rather than printed as two lines of Python warning.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from deepdive.data.pipeline import Split
from deepdive.errors import UserError

log = logging.getLogger("deepdive")


def memory_limit() -> int:
    """Bytes a decoded dataset may take: $DEEPDIVE_MEMORY_LIMIT, else half of the available memory."""
    text = os.environ.get("DEEPDIVE_MEMORY_LIMIT")
    if text:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value < float("inf"):
            raise UserError(f"DEEPDIVE_MEMORY_LIMIT={text!r} is not a number of bytes: set it to e.g. 4e9, or unset it")
        return int(value)
    return available_memory() // 2


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (16 GB where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 16 << 30


DEFAULT_MAX_BYTES = 256 << 20  # --max-image-mb's default


def load_imagefolder(data_dir: str | Path, image_size: int, strict: bool = False,
                     test_only: bool = False, workers: int = 2, max_bytes: int = DEFAULT_MAX_BYTES):
    """Decode both splits (``test_only``: the train split is scanned for class names, not decoded).

    Decoded splits go through the dataset cache. A folder whose decoded size
    (estimated from the file count before decoding) exceeds ``memory_limit()``
    is streamed from disk instead.
    """
    from deepdive.data.cache import cached

    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist: give a folder holding train/<class>/ and test/<class>/")
    train_files, classes = _scan(root / "train", None)
    test_files, _ = _scan(root / "test", classes)
    needed = (len(train_files) + len(test_files)) * 3 * image_size * image_size
    if needed > memory_limit() and not test_only:
        from deepdive.data.streaming import StreamingSplit
        log.info("image folder %s needs ~%.1f GB decoded, more than the %.1f GB allowed: streaming it from disk "
                 "with %d DataLoader workers (-j)", root, needed / 1e9, memory_limit() / 1e9, workers)

        def stream(files, every_class=False):
            files = _readable_headers(files, strict, classes, max_bytes, every_class)
            return StreamingSplit([p for p, _ in files], torch.tensor([c for _, c in files]), image_size, workers,
                                  strict, max_bytes)
        return stream(train_files, every_class=True), stream(test_files), classes

    def build():
        return _decode_splits(train_files, test_files, image_size, strict, classes, test_only, max_bytes)

    if test_only:
        return build()
    params = {"image_size": image_size, "strict": strict, "max_bytes": max_bytes}
    return cached("imagefolder", [p for p, _ in train_files + test_files], root, params, build, max_bytes=max_bytes)


def _decode_splits(train_files, test_files, image_size, strict, classes, test_only, max_bytes):
    if test_only:
        train = Split(torch.empty((0, 3, image_size, image_size), dtype=torch.uint8), torch.empty(0, dtype=torch.int64))
    else:
        train = _decode(train_files, image_size, strict, classes, max_bytes, require_every_class=True)
    return train, _decode(test_files, image_size, strict, classes, max_bytes), classes


def _scan(split_dir: Path, classes: list[str] | None) -> tuple[list[tuple[Path, int]], list[str]]:
    if not split_dir.is_dir():
        raise UserError(f"image folder split {split_dir} is missing: lay images out as "
                        f"{split_dir.parent}/train/<class>/* and {split_dir.parent}/test/<class>/*")
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if classes is None:
        classes = found
        if len(classes) < 2:
            raise UserError(f"{split_dir} has {len(classes)} class folder(s): a classifier needs at least 2")
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise UserError(f"{split_dir} has class folder(s) {', '.join(unknown)} that train/ lacks: "
                            "use the same class folders in both splits")
    files = []
    for index, name in enumerate(classes):
        folder = split_dir / name
        members = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        if not members and split_dir.name == "train":
            raise UserError(f"class folder {folder} is empty: add images or remove the folder")
        files.extend((p, index) for p in members)
    if not files:
        raise UserError(f"{split_dir} holds no images: add images under {split_dir}/<class>/")
    return files, classes


class UnreadableImage(Exception):
    pass


MAX_PIXELS = 1 << 25  # 33.5 M pixels (an 8K frame, most photos): one decode stays under ~250 MB


def load_image(path: Path, size: tuple[int, int], channels: int = 3,
               max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Open any image PIL reads, convert to RGB (or grey for 1 channel), resize: (H, W, C) uint8.

    Training data and ``predict`` both go through here, so a file is seen the same way by both.
    """
    from PIL import Image

    with _opened(path, max_bytes, whole=True) as img:
        img = img.convert("RGB" if channels == 3 else "L")
        if img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def check_header(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """What opening a file costs (its header, not its pixels): raises ``UnreadableImage`` for a file
    PIL does not recognise, one above ``max_bytes``, above ``MAX_PIXELS``, or a decompression bomb."""
    with _opened(path, max_bytes):
        pass


@contextlib.contextmanager
def _opened(path: Path, max_bytes: int, whole: bool = False):
    """``Image.open`` (which reads the header only) behind the size and pixel ceilings; every way PIL
    fails - on the header here, or on the pixels in the caller's block - becomes ``UnreadableImage``.

    ``whole``: the pixels will be decoded, so the file is read into memory first and PIL reads from
    that. PIL asks its file for a chunk's *declared* length at once (a PNG IDAT claiming 3 GB), and a
    real file object allocates what is asked; an in-memory one returns only what there is.
    """
    from PIL import Image, UnidentifiedImageError

    _bombs_are_errors()
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise UnreadableImage(f"larger than {max_bytes / (1 << 20):g} MB (--max-image-mb)")
        if whole:
            with open(path, "rb") as f:
                source = io.BytesIO(f.read(size + 1))
        else:
            source = path
        with Image.open(source) as img:
            if img.width * img.height > MAX_PIXELS:
                raise UnreadableImage(f"{img.width}x{img.height} pixels, more than {MAX_PIXELS:,}")
            yield img
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(f"{type(exc).__name__}") from None


def _bombs_are_errors() -> None:
    """PIL warns (two lines of Python warning) for images between MAX_IMAGE_PIXELS and twice that:
    make that warning an exception, so such a file is one more unreadable file."""
    import warnings

    from PIL import Image

    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def report_unreadable(bad: list[str], strict: bool, where: str = "") -> None:
    """The one warning (skip) or the one refusal (``strict``) for unreadable files, in memory or streaming."""
    if bad and strict:
        raise UserError(f"cannot read image {bad[0]} ({len(bad)} unreadable file(s) {where or 'in all'}): "
                        "remove or replace them, or drop --strict to skip them")
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        log.warning("warning: skipped %d unreadable or non-image file(s)%s: %s", len(bad),
                    f" {where}" if where else "", shown)


def _readable_headers(files, strict: bool, classes: list[str], max_bytes: int, every_class: bool):
    """Streaming: the files whose headers PIL reads (the same skip/strict rule as decoding in memory)."""
    def ok(item) -> bool:
        try:
            check_header(item[0], max_bytes)
            return True
        except UnreadableImage:
            return False

    with ThreadPoolExecutor(max_workers=4) as pool:
        flags = list(pool.map(ok, files))
    report_unreadable([str(p) for (p, _), good in zip(files, flags) if not good], strict)
    kept = [item for item, good in zip(files, flags) if good]
    _check_classes(torch.tensor([c for _, c in kept], dtype=torch.int64), classes, every_class)
    return kept


def _check_classes(labels: torch.Tensor, classes: list[str], every_class: bool) -> None:
    if every_class:
        counts = torch.bincount(labels, minlength=len(classes))
        empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
        if empty:
            raise UserError(f"class folder(s) {', '.join(empty)} hold no readable image: add images or remove them")
    if len(labels) == 0:
        raise UserError("the image folder holds no readable image: add images PIL can open")


def _decode(files: list[tuple[Path, int]], image_size: int, strict: bool, classes: list[str], max_bytes: int,
            require_every_class: bool = False) -> Split:
    images = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    ok = np.ones(len(files), dtype=bool)

    def work(i: int) -> None:
        try:
            images[i] = load_image(files[i][0], (image_size, image_size), max_bytes=max_bytes)
        except UnreadableImage:
            ok[i] = False

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(len(files))))
    report_unreadable([str(files[i][0]) for i in np.flatnonzero(~ok)], strict)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)[torch.from_numpy(ok)]
    _check_classes(labels, classes, require_every_class)
    kept = torch.from_numpy(images[ok])
    return Split(kept.permute(0, 3, 1, 2).contiguous(), labels)
