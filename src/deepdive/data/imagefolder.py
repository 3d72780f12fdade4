"""Image-folder datasets: ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``.

Any file PIL opens is converted to RGB and resized to ``image_size`` square.
Class names are the sorted folder names of the train split; the test split must
use the same ones. An unreadable file is an error naming it.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from deepdive.data.pipeline import Split
from deepdive.errors import UserError


def load_imagefolder(data_dir: str | Path, image_size: int) -> tuple[Split, Split, list[str]]:
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist: give a folder holding train/<class>/ and test/<class>/")
    train_files, classes = _scan(root / "train", None)
    test_files, _ = _scan(root / "test", classes)
    return _decode(train_files, image_size), _decode(test_files, image_size), classes


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


def _load_one(path: Path, image_size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot read image {path} ({type(exc).__name__}): remove or replace the file") from None


def _decode(files: list[tuple[Path, int]], image_size: int) -> Split:
    images = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)

    def work(i: int) -> None:
        images[i] = _load_one(files[i][0], image_size)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(len(files))))
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels)
