"""Image-folder datasets: ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``.

Any file PIL opens is converted to RGB and resized to ``image_size`` square.
Class names are the sorted folder names of the train split; the test split must
use the same ones. Files PIL cannot read are skipped with one warning (a count
and the first few names), or refused with ``strict``.
"""
from __future__ import annotations

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
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 8 << 30


def load_imagefolder(data_dir: str | Path, image_size: int, strict: bool = False,
                     test_only: bool = False, workers: int = 2):
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

        def stream(files):
            return StreamingSplit([p for p, _ in files], torch.tensor([c for _, c in files]), image_size, workers)
        return stream(train_files), stream(test_files), classes

    def build():
        return _decode_splits(train_files, test_files, image_size, strict, classes, test_only)

    if test_only:
        return build()
    params = {"image_size": image_size, "strict": strict}
    return cached("imagefolder", [p for p, _ in train_files + test_files], root, params, build)


def _decode_splits(train_files, test_files, image_size, strict, classes, test_only):
    if test_only:
        train = Split(torch.empty((0, 3, image_size, image_size), dtype=torch.uint8), torch.empty(0, dtype=torch.int64))
    else:
        train = _decode(train_files, image_size, strict, classes, require_every_class=True)
    return train, _decode(test_files, image_size, strict, classes), classes


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


def load_image(path: Path, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """Open any image PIL reads, convert to RGB (or grey for 1 channel), resize: (H, W, C) uint8.

    Training data and ``predict`` both go through here, so a file is seen the same way by both.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"{type(exc).__name__}") from None
    return array[:, :, None] if array.ndim == 2 else array


def _decode(files: list[tuple[Path, int]], image_size: int, strict: bool, classes: list[str],
            require_every_class: bool = False) -> Split:
    images = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    ok = np.ones(len(files), dtype=bool)

    def work(i: int) -> None:
        try:
            images[i] = load_image(files[i][0], (image_size, image_size))
        except UnreadableImage:
            ok[i] = False

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(len(files))))
    bad = [str(files[i][0]) for i in np.flatnonzero(~ok)]
    if bad and strict:
        raise UserError(f"cannot read image {bad[0]} ({len(bad)} unreadable file(s) in all): "
                        "remove or replace them, or drop --strict to skip them")
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        log.warning("warning: skipped %d unreadable or non-image file(s): %s", len(bad), shown)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)[torch.from_numpy(ok)]
    if require_every_class:
        counts = torch.bincount(labels, minlength=len(classes))
        empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
        if empty:
            raise UserError(f"class folder(s) {', '.join(empty)} hold no readable image: add images or remove them")
    if len(labels) == 0:
        raise UserError("the image folder holds no readable image: add images PIL can open")
    kept = torch.from_numpy(images[ok])
    return Split(kept.permute(0, 3, 1, 2).contiguous(), labels)
