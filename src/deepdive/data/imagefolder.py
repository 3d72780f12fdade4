"""Image-folder datasets, laid out the ways people lay them out.

``DIR/train/<class>/*`` with, beside it,

- ``test/``: trained on train/, reported on test/ (the original layout);
- ``val/`` alone: val/ is the held-out split reported as the test accuracy;
- ``val/`` and ``test/``: val/ selects the best epoch (the role ``--val-split``
  gives a slice of train/), test/ is reported;

or ``DIR/<class>/*``, one folder of class folders, split by ``--val-split F``
(stratified, seeded) into train and a reported held-out part. summary.json
names the layout and the folder reported.

Any file PIL opens is converted to RGB - grayscale, 16-bit, palette and
transparent images included (transparency flattened onto white), the
conversions counted and stated in one log line - and fitted to ``image_size``
square by ``resize_mode``: ``crop`` scales the shorter side to the size and
keeps the centre square (shapes stay undistorted), ``squash`` scales both
sides (the whole picture, distorted). Class names are the sorted folder names
of train/ (or of DIR); the other folders must use the same ones. Files PIL
cannot read are skipped with one warning (a count and the first few names),
or refused with ``strict`` - in memory and when streaming alike. A file larger
than ``--max-image-mb`` is unreadable without being read, and so is an image
PIL flags as a decompression bomb (more than ``Image.MAX_IMAGE_PIXELS``
pixels): its warning is turned into that error rather than printed as two
lines of Python warning.
"""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepdive.config.machine import memory_limit
from deepdive.data.images import (ALPHA_KINDS, DEFAULT_MAX_BYTES, UnreadableImage, check_header,
                                  read_image, report_unreadable)
from deepdive.data.pipeline import Split, stratified_split
from deepdive.errors import UserError

log = logging.getLogger("deepdive")




@dataclass
class FolderData:
    """An image folder's splits, and where each came from (``source``: summary.json's account of the layout)."""

    train: Split
    test: Split
    classes: list[str]
    val: Split | None = None
    source: dict = field(default_factory=dict)


def load_imagefolder(data_dir: str | Path, image_size: int, strict: bool = False, test_only: bool = False,
                     workers: int = 2, max_bytes: int = DEFAULT_MAX_BYTES, resize_mode: str = "crop"):
    """(train, test, classes) of a train/ + test/ or train/ + val/ folder (``load_imagefolder_layout`` has it all)."""
    data = load_imagefolder_layout(data_dir, image_size, strict, test_only, workers, max_bytes, resize_mode)
    return data.train, data.test, data.classes


def load_imagefolder_layout(data_dir: str | Path, image_size: int, strict: bool = False, test_only: bool = False,
                            workers: int = 2, max_bytes: int = DEFAULT_MAX_BYTES, resize_mode: str = "crop",
                            val_split: float | None = None, seed: int = 0) -> FolderData:
    """Decode the folder's splits as its layout assigns them (see the module's docstring).

    ``test_only``: only the reported split is decoded (the class names are still read from train/, or DIR);
    a single folder is then all test images. ``val_split`` and ``seed`` split a single folder: the held-out
    part is reported as the test split (``stratified_split``, seeded with ``seed + 2`` as ``--val-split`` is).
    Decoded splits go through the dataset cache, keyed on ``resize_mode`` too. A folder whose decoded size
    (estimated from the file count before decoding) exceeds ``memory_limit()`` is streamed from disk instead.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist: give a folder holding train/<class>/ and "
                        "test/<class>/ (or val/<class>/), or <class>/ folders with --val-split F")
    folders, source = _layout(root, val_split, test_only)
    first = "train" if "train" in folders else "all"
    first_files, classes = _scan(folders[first], None, every_class=True)
    files = {first: first_files}
    for role in ("val", "test"):
        if role in folders:
            files[role] = _scan(folders[role], classes)[0]
    if test_only:  # the reported split only: test/ (or val/ standing in for it), or the whole single folder
        files = {"test": files["test" if "test" in files else "all"]}
    decode = dict(image_size=image_size, strict=strict, max_bytes=max_bytes, resize_mode=resize_mode)
    needed = sum(len(f) for f in files.values()) * 3 * image_size * image_size
    if needed > memory_limit() and not test_only:
        log.info("image folder %s needs ~%.1f GB decoded, more than the %.1f GB allowed: streaming it from disk "
                 "with %d DataLoader workers (-j)", root, needed / 1e9, memory_limit() / 1e9, workers)
        splits, counts = _streamed(files, classes, workers, **decode)
    else:
        splits, counts, classes = _decoded(root, folders, files, first, classes, test_only, **decode)
    _say_converted(counts)
    if test_only:
        return FolderData(_empty(image_size), splits["test"], classes, None, source)
    if first == "all":
        train, test = stratified_split(splits["all"], val_split, seed + 2)
        log.info("image folder %s: one folder of class folders; --val-split %g holds out %d of its %d images "
                 "(stratified, seed %d), reported as the test accuracy", root, val_split, len(test),
                 len(splits["all"]), seed)
        return FolderData(train, test, classes, None, source)
    _say_layout(root, source)
    return FolderData(splits["train"], splits["test"], classes, splits.get("val"), source)


def _empty(image_size: int) -> Split:
    return Split(torch.empty((0, 3, image_size, image_size), dtype=torch.uint8), torch.empty(0, dtype=torch.int64))


def _streamed(files: dict, classes: list[str], workers: int, image_size: int, strict: bool, max_bytes: int,
              resize_mode: str) -> tuple[dict, Counter]:
    """Each split as a ``StreamingSplit`` over its readable files (headers checked now, pixels per batch)."""
    from deepdive.data.streaming import StreamingSplit

    counts: Counter = Counter()

    def stream(role):
        kept, kinds = _readable_headers(files[role], strict, classes, max_bytes, role in ("train", "all"))
        counts.update(kinds)
        return StreamingSplit([p for p, _ in kept], torch.tensor([c for _, c in kept]), image_size, workers,
                              strict, max_bytes, resize_mode)
    return {role: stream(role) for role in files}, counts


def _decoded(root: Path, folders: dict, files: dict, first: str, classes: list[str], test_only: bool,
             image_size: int, strict: bool, max_bytes: int, resize_mode: str) -> tuple[dict, Counter, list[str]]:
    """Each split decoded into memory, through the dataset cache (not for a test-only read)."""
    from deepdive.data.cache import cached

    def build():
        decoded = {role: _decode(fs, image_size, strict, classes, max_bytes, resize_mode,
                                 require_every_class=role in ("train", "all")) for role, fs in files.items()}
        first_split = decoded[first][0] if first in decoded else _empty(image_size)
        test = decoded["test"][0] if "test" in decoded else _empty(image_size)
        kinds = sum((c for _, c in decoded.values()), Counter())
        extras = {"converted": dict(kinds)}
        if "val" in decoded:
            extras["val"] = decoded["val"][0]
        return first_split, test, classes, extras

    if test_only:
        built = build()
    else:
        params = {"image_size": image_size, "strict": strict, "max_bytes": max_bytes, "resize_mode": resize_mode,
                  "layout": sorted((role, folder.name) for role, folder in folders.items())}
        built = cached("imagefolder", [p for fs in files.values() for p, _ in fs], root, params, build,
                       max_bytes=max_bytes)
    first_split, test, classes = built[:3]  # (the cached class names: the same files give the same)
    extras = built[3] if len(built) > 3 else {}
    splits = {first: first_split, "test": test, **({"val": extras["val"]} if "val" in extras else {})}
    return splits, Counter(extras.get("converted", {})), classes


def _layout(root: Path, val_split: float | None, test_only: bool) -> tuple[dict[str, Path], dict]:
    """{role: folder} (roles train, val, test; a single folder of class folders: all) and summary.json's account."""
    has = {name: (root / name).is_dir() for name in ("train", "val", "test")}
    if has["train"] and has["test"]:
        if has["val"]:
            if val_split and not test_only:
                raise UserError(f"--val-split {val_split:g} and {root / 'val'} both hold out validation images: "
                                "drop --val-split (val/ then selects the best epoch) or remove val/")
            return ({"train": root / "train", "val": root / "val", "test": root / "test"},
                    {"data_layout": "train+val+test", "test_folder": "test", "val_folder": "val"})
        return {"train": root / "train", "test": root / "test"}, {"data_layout": "train+test", "test_folder": "test"}
    if has["train"] and has["val"]:
        return {"train": root / "train", "test": root / "val"}, {"data_layout": "train+val", "test_folder": "val"}
    if has["train"]:
        raise UserError(f"image folder {root} has train/ but neither test/ nor val/: add {root / 'test'}/<class>/ "
                        f"(or val/<class>/), or give --data-dir {root / 'train'} with --val-split F")
    if has["val"] or has["test"]:
        present = "val/" if has["val"] else "test/"
        raise UserError(f"image folder {root} has {present} but no train/: add {root / 'train'}/<class>/ "
                        "with the same class folders")
    if not val_split and not test_only:
        _scan_classes(root)  # a folder with no class folders is told that first
        raise UserError(f"image folder {root} is one folder of class folders, with no held-out split: add "
                        f"--val-split F (e.g. 0.2) to hold out that fraction for testing, or make "
                        f"{root / 'train'}/<class>/ and {root / 'test'}/<class>/")
    return {"all": root}, {"data_layout": "single", "test_folder": None}


def _say_layout(root: Path, source: dict) -> None:
    layout = source["data_layout"]
    if layout == "train+val":
        log.info("image folder %s: train/ and val/ (no test/): val/ is held out and reported as the test accuracy",
                 root)
    elif layout == "train+val+test":
        log.info("image folder %s: val/ selects the best epoch (best.safetensors), test/ is reported", root)


def _say_converted(counts: Counter) -> None:
    """The run's one line about converted images (never one per file)."""
    if not counts:
        return
    parts = [f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    flattened = any(kind in ALPHA_KINDS for kind in counts)
    log.info("converted %s image%s to RGB%s", listed, "" if sum(counts.values()) == 1 else "s",
             " (transparency flattened onto white)" if flattened else "")


def _class_folders(split_dir: Path) -> list[str]:
    """The class folders of a split, sorted; hidden ones (.ipynb_checkpoints, .git, ...) are not classes."""
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_classes(split_dir: Path) -> list[str]:
    classes = _class_folders(split_dir)
    if len(classes) < 2:
        raise UserError(f"{split_dir} has {len(classes)} class folder(s): a classifier needs at least 2 (lay images "
                        f"out as train/<class>/ with test/<class>/ or val/<class>/, or <class>/ with --val-split F)")
    return classes


def _scan(split_dir: Path, classes: list[str] | None,
          every_class: bool = False) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, label) pairs of one folder; ``classes`` None: its own folders are the classes.
    ``every_class``: a class folder must hold files (the folder that defines the classes)."""
    if not split_dir.is_dir():
        raise UserError(f"image folder split {split_dir} is missing: lay images out as "
                        f"{split_dir.parent}/train/<class>/* and {split_dir.parent}/test/<class>/*")
    if classes is None:
        classes = _scan_classes(split_dir)
    else:
        found = _class_folders(split_dir)
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise UserError(f"{split_dir} has class folder(s) {', '.join(unknown)} that train/ lacks: "
                            "use the same class folders in every split")
    files = []
    for index, name in enumerate(classes):
        folder = split_dir / name
        members = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        if not members and every_class:
            raise UserError(f"class folder {folder} is empty: add images or remove the folder")
        files.extend((p, index) for p in members)
    if not files:
        raise UserError(f"{split_dir} holds no images: add images under {split_dir}/<class>/")
    return files, classes


def _readable_headers(files, strict: bool, classes: list[str], max_bytes: int, every_class: bool):
    """Streaming: the files whose headers PIL reads (the same skip/strict rule as decoding in memory), and
    the conversions they will need (counted from the headers: the workers decode them later)."""
    kinds: dict[int, str | None] = {}

    def ok(i: int) -> bool:
        try:
            kinds[i] = check_header(files[i][0], max_bytes)
            return True
        except UnreadableImage:
            return False

    with ThreadPoolExecutor(max_workers=4) as pool:
        flags = list(pool.map(ok, range(len(files))))
    report_unreadable([str(p) for (p, _), good in zip(files, flags) if not good], strict)
    kept = [item for item, good in zip(files, flags) if good]
    _check_classes(torch.tensor([c for _, c in kept], dtype=torch.int64), classes, every_class)
    return kept, Counter(k for k in kinds.values() if k is not None)


def _check_classes(labels: torch.Tensor, classes: list[str], every_class: bool) -> None:
    if every_class:
        counts = torch.bincount(labels, minlength=len(classes))
        empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
        if empty:
            raise UserError(f"class folder(s) {', '.join(empty)} hold no readable image: add images or remove them")
    if len(labels) == 0:
        raise UserError("the image folder holds no readable image: add images PIL can open")


def _decode(files: list[tuple[Path, int]], image_size: int, strict: bool, classes: list[str], max_bytes: int,
            resize_mode: str = "crop", require_every_class: bool = False) -> tuple[Split, Counter]:
    """One split decoded, and the conversions its readable files needed."""
    images = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    ok = np.ones(len(files), dtype=bool)
    kinds: list[str | None] = [None] * len(files)

    def work(i: int) -> None:
        try:
            images[i], kinds[i] = read_image(files[i][0], (image_size, image_size), max_bytes=max_bytes,
                                             resize_mode=resize_mode)
        except UnreadableImage:
            ok[i] = False

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(len(files))))
    report_unreadable([str(files[i][0]) for i in np.flatnonzero(~ok)], strict)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)[torch.from_numpy(ok)]
    _check_classes(labels, classes, require_every_class)
    kept = torch.from_numpy(images[ok])
    converted = Counter(kind for kind, good in zip(kinds, ok) if good and kind is not None)
    return Split(kept.permute(0, 3, 1, 2).contiguous(), labels), converted


def read_dataset(name: str, options) -> "Loaded":  # noqa: F821
    """The ``imagefolder`` reader of ``data/datasets.py``."""
    from deepdive.data.datasets import Loaded
    folder = load_imagefolder_layout(options.data_dir, options.image_size, strict=options.strict,
                                     test_only=options.test_only, workers=options.workers,
                                     max_bytes=int(options.max_image_mb * (1 << 20)),
                                     resize_mode=options.resize_mode, val_split=options.val_split, seed=options.seed)
    return Loaded(folder.train, folder.test, folder.classes, folder.val, folder.source)
