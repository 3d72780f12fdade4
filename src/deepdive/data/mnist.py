"""MNIST and Fashion-MNIST from their original idx files (gzipped or not).

Looked for in ``DATA_DIR/FashionMNIST/raw/`` (torchvision's layout),
``DATA_DIR/`` itself, and for Fashion-MNIST in Debian's
``/usr/share/datasets/fashion-mnist/``. Headers are validated against the file
size before any array is allocated, so a header claiming 10^12 images is an
error, not an out-of-memory crash.
"""
from __future__ import annotations

import gzip
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from deepdive.config.names import MAX_SIDE
from deepdive.data.pipeline import Split
from deepdive.errors import UserError

log = logging.getLogger("deepdive")

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(d) for d in range(10)]
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
MAX_IDX_BYTES = 1 << 32  # 4 GiB: far above any MNIST-like file, far below an absurd header
CHUNK = 1 << 20


def candidate_dirs(name: str, data_dir: str | Path) -> list[Path]:
    root = Path(data_dir)
    sub = "FashionMNIST" if name == "fashion-mnist" else "MNIST"
    dirs = [root / sub / "raw", root / sub, root]
    if name == "fashion-mnist":
        dirs.append(DEBIAN_FASHION)
    return dirs


def find_files(name: str, data_dir: str | Path) -> dict[str, Path]:
    """The first folder holding all four files (plain or .gz) wins."""
    for folder in candidate_dirs(name, data_dir):
        found = {}
        for key, stem in FILES.items():
            for candidate in (folder / stem, folder / (stem + ".gz")):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(FILES):
            if folder == DEBIAN_FASHION:  # not under --data-dir: say where the images came from
                log.info("%s: no idx files under %s; reading Debian's copy in %s", name, data_dir, folder)
            return found
    where = ", ".join(str(d) for d in candidate_dirs(name, data_dir))
    hint = " or `apt-get install dataset-fashion-mnist`" if name == "fashion-mnist" else ""
    raise UserError(f"{name} idx files not found (looked in {where}): put "
                    f"{', '.join(FILES.values())} (.gz or not) in --data-dir{hint}")


def load_mnist_like(name: str, data_dir: str | Path) -> tuple[Split, Split, list[str]]:
    from deepdive.data.cache import cached

    files = find_files(name, data_dir)
    root = files["train_images"].parent
    return cached(name, list(files.values()), root, {}, lambda: _read_files(name, files))


def _read_files(name: str, files: dict[str, Path]) -> tuple[Split, Split, list[str]]:
    train = _paired(files["train_images"], files["train_labels"])
    test = _paired(files["test_images"], files["test_labels"])
    classes = FASHION_CLASSES if name == "fashion-mnist" else MNIST_CLASSES
    for split, path in ((train, files["train_labels"]), (test, files["test_labels"])):
        if len(split) and int(split.labels.max()) >= len(classes):
            raise UserError(f"{path} has label {int(split.labels.max())}, but {name} has {len(classes)} classes: "
                            "replace it with a good copy")
    return train, test, classes


def _paired(images_path: Path, labels_path: Path) -> Split:
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise UserError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                        f"{labels.shape[0]} labels: use files from the same release")
    return Split(images, labels)


def read_idx_images(path: Path) -> torch.Tensor:
    data = _read_idx(path, expect_dims=3)
    return torch.from_numpy(data).unsqueeze(1)  # N, 1, H, W


def read_idx_labels(path: Path) -> torch.Tensor:
    return torch.from_numpy(_read_idx(path, expect_dims=1).astype(np.int64))


def _read_idx(path: Path, expect_dims: int) -> np.ndarray:
    """An idx file's array, with its header checked against the data before anything is allocated.

    A plain file's header is compared with its size on disk; a gzipped file is
    first decompressed in bounded chunks just to count its length, so a small
    gzip that inflates to gigabytes, or a header that claims more than the
    file holds, is refused with flat memory. Only then is the array read.
    """
    try:
        with _open(path) as f:
            shape, header = _read_header(f, path, expect_dims)
            size = int(np.prod(shape, dtype=np.int64))
            if len(shape) == 3 and max(shape[1:]) > MAX_SIDE:
                raise UserError(f"idx file {path} declares images of {shape[1]}x{shape[2]} pixels, more than "
                                f"the {MAX_SIDE}-pixel side deepdive takes: check the file")
            if size > MAX_IDX_BYTES:
                raise UserError(f"idx file {path} declares {size / 1e9:.1f} GB of data, more than any idx dataset "
                                "this reader accepts: check the file")
            held = _data_length(f, path, header, size)
            if held != size:
                holds = f"more than {size}" if held > size else str(held)
                raise UserError(f"idx file {path} holds {holds} bytes of data but its header {tuple(shape)} "
                                f"needs {size}: the file is truncated or corrupt; replace it")
        data = np.empty(size, dtype=np.uint8)
        with _open(path) as f:
            f.read(header)
            if f.readinto(memoryview(data)) != size:
                raise UserError(f"idx file {path} changed while it was read: read it again")
    except (EOFError, OSError, zlib.error) as exc:
        raise UserError(f"{path} is truncated or not valid gzip ({exc}): replace it with a good copy") from None
    return data.reshape(shape)


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_header(f, path: Path, expect_dims: int) -> tuple[tuple[int, ...], int]:
    magic = f.read(4)
    if len(magic) < 4:
        raise UserError(f"idx file {path} is truncated (no header): replace it with a good copy")
    zero, dtype_code, dims = struct.unpack(">HBB", magic)
    if zero != 0 or dtype_code != 0x08:
        raise UserError(f"{path} is not an idx file of unsigned bytes (magic {magic.hex()}): "
                        "replace it with a good copy")
    if dims != expect_dims:
        kind = "images (3 dimensions)" if expect_dims == 3 else "labels (1 dimension)"
        raise UserError(f"idx file {path} has {dims} dimensions but should hold {kind}: check which file is which")
    sizes = f.read(4 * dims)
    if len(sizes) < 4 * dims:
        raise UserError(f"idx file {path} is truncated (short header): replace it with a good copy")
    return struct.unpack(f">{dims}I", sizes), 4 + 4 * dims


def _data_length(f, path: Path, header: int, size: int) -> int:
    """Bytes after the header; for gzip counted a megabyte at a time, stopping just past ``size``."""
    if path.suffix != ".gz":
        return path.stat().st_size - header
    held = 0
    while held <= size:
        chunk = f.read(min(CHUNK, size + 1 - held))
        if not chunk:
            break
        held += len(chunk)
    return held


def read_dataset(name: str, options) -> "Loaded":  # noqa: F821
    """The ``mnist`` reader of ``data/datasets.py`` (MNIST and Fashion-MNIST share the idx format)."""
    from deepdive.data.datasets import Loaded
    return Loaded(*load_mnist_like(name, options.data_dir))
