"""CIFAR-10 in torchvision's layout (``DATA_DIR/cifar-10-batches-py/``).

Missing data is downloaded as the article's script does (torchvision's download
and md5 check). A present copy is never downloaded over: if its md5 differs
from the official one but its structure is valid, it is loaded with a warning.
Batches are read with a restricted unpickler (see ``safe_pickle``).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from deepdive.data.pipeline import Split
from deepdive.data.safe_pickle import RefusedPickle, load_cifar_pickle
from deepdive.errors import UserError, first_line

log = logging.getLogger("deepdive")

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
}
TEST_FILES = {"test_batch": "40351d587109b95175f43aff81a1287e"}
BATCHES = {**TRAIN_FILES, **TEST_FILES}  # every batch file and its md5, in reading order
META = ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888")
IMAGES_PER_BATCH = 10_000
MAX_BATCH_BYTES = 64 << 20  # 30.7 MB of pixels, up to twice that pickled by Python 3 (bytes >= 128: 2 in UTF-8)
MAX_META_BYTES = 1 << 20  # batches.meta is a few hundred bytes
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_cifar10(data_dir: str | Path, download: bool = True) -> tuple[Split, Split, list[str]]:
    root = Path(data_dir)
    folder = root / FOLDER
    if not folder.is_dir():
        if root.is_file():
            raise UserError(f"--data-dir {root} is a file: give a folder (it will hold {FOLDER}/)")
        if not download:
            raise UserError(f"CIFAR-10 not found: {folder} does not exist; put a copy of {FOLDER}/ there, "
                            "or drop --no-download to download it")
        _download(root)
    missing = [n for n in BATCHES if not (folder / n).is_file()]
    if missing:
        raise UserError(f"CIFAR-10 folder {folder} is incomplete (missing {', '.join(missing)}): "
                        "replace it with a complete copy of cifar-10-batches-py/")
    for name in [*BATCHES, META[0]]:  # before the cache hashes them: a 64 GB file is refused unread
        limit = MAX_META_BYTES if name == META[0] else MAX_BATCH_BYTES
        if (folder / name).is_file() and (folder / name).stat().st_size > limit:
            _read_capped(folder / name, limit)
    from deepdive.data.cache import cached
    files = [folder / n for n in BATCHES] + ([folder / META[0]] if (folder / META[0]).is_file() else [])
    return cached("cifar10", files, folder, {}, lambda: _read_folder(folder))


def _read_folder(folder: Path) -> tuple[Split, Split, list[str]]:
    mismatched = []
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, md5 in BATCHES.items():
        raw = _read_capped(folder / name, MAX_BATCH_BYTES)
        if hashlib.md5(raw).hexdigest() != md5:
            mismatched.append(name)
        parts[name] = _parse_batch(raw, folder / name)
    classes = _read_meta(folder)
    if mismatched:
        log.warning("warning: CIFAR-10 files in %s differ from the official release (md5 of %s); "
                    "loading them because their structure is valid (said once for these files: README, "
                    "Datasets)", folder, ", ".join(mismatched), extra={"once": True})
    train = _to_split([parts[n] for n in TRAIN_FILES])
    test = _to_split([parts[n] for n in TEST_FILES])
    return train, test, classes


def _download(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    log.info("downloading CIFAR-10 to %s", root)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / ARCHIVE
    try:
        download_and_extract_archive(URL, str(root), filename=ARCHIVE, md5=ARCHIVE_MD5)
    except Exception as exc:  # network errors come in many types; all mean the same to the user
        reason = first_line(exc, None)
        raise UserError(f"could not download CIFAR-10 from {URL} ({reason}): put a copy of {FOLDER}/ "
                        f"in {root}, or build one with make_cifar10.py") from None
    finally:
        if archive.exists():
            os.remove(archive)  # the extracted folder is what we read; never keep a half-downloaded archive
    if not (root / FOLDER).is_dir():
        raise UserError(f"the CIFAR-10 archive from {URL} did not hold {FOLDER}/: put a copy of it in {root}")


def _field(batch: dict, key: str):
    if key in batch:
        return batch[key]
    return batch.get(key.encode())


def _parse_batch(raw: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = load_cifar_pickle(raw)
    except RefusedPickle as exc:
        raise UserError(f"refused to load {path}: {exc}; replace it with a genuine CIFAR-10 file") from None
    except Exception as exc:
        detail = first_line(exc, 100)
        raise UserError(f"CIFAR-10 file {path} is truncated or corrupt ({detail}): "
                        "replace it with a good copy") from None
    data = _field(batch, "data") if isinstance(batch, dict) else None
    labels = _field(batch, "labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
            or data.shape[0] > IMAGES_PER_BATCH:
        raise UserError(f"CIFAR-10 file {path} has no uint8 'data' array of shape (N, 3072) with N <= "
                        f"{IMAGES_PER_BATCH}: replace it with a good copy")
    labels = _labels(labels, data.shape[0])
    if labels is None:
        raise UserError(f"CIFAR-10 file {path} has labels that do not match its images "
                        "(need one label in 0..9 per image): replace it with a good copy")
    return data.reshape(-1, 3, 32, 32), labels


def _labels(values, n: int) -> np.ndarray | None:
    """Exactly ``n`` integer labels in 0..9 (a list of ints, or an integer array), else None."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu" or values.shape != (n,):
            return None
        labels = values.astype(np.int64)
    elif isinstance(values, list) and len(values) == n and all(type(v) is int for v in values):
        if any(v < 0 or v > 9 for v in values):
            return None
        labels = np.array(values, dtype=np.int64)
    else:
        return None
    return labels if not labels.size or (labels.min() >= 0 and labels.max() <= 9) else None


def _read_capped(path: Path, limit: int) -> bytes:
    """The file's bytes, refused unread when it is larger than any genuine CIFAR-10 file."""
    size = path.stat().st_size
    if size > limit:
        raise UserError(f"CIFAR-10 file {path} is {size / 1e6:.0f} MB, larger than any genuine one "
                        f"({limit / 1e6:.0f} MB at most): replace it with a good copy")
    from deepdive.storage.files import read_bounded
    return read_bounded(path, limit, "replace it with a good copy")


def _read_meta(folder: Path) -> list[str]:
    path = folder / META[0]
    if not path.is_file():
        return list(CLASSES)
    try:
        meta = load_cifar_pickle(_read_capped(path, MAX_META_BYTES))
    except RefusedPickle as exc:
        raise UserError(f"refused to load {path}: {exc}; replace it with a genuine CIFAR-10 file") from None
    except UserError:
        raise
    except Exception:
        raise UserError(f"CIFAR-10 file {path} is truncated or corrupt: replace it with a good copy") from None
    names = _field(meta, "label_names") if isinstance(meta, dict) else None
    if isinstance(names, list):
        try:
            names = [n.decode() if isinstance(n, bytes) else n for n in names]
        except UnicodeDecodeError:
            names = None
    if not (isinstance(names, list) and len(names) == 10 and all(
            isinstance(n, str) and 0 < len(n) <= 100 and n.isprintable() for n in names)):
        raise UserError(f"CIFAR-10 file {path} has no list of 10 printable label names: replace it with a good copy")
    return names


def _to_split(parts: list[tuple[np.ndarray, np.ndarray]]) -> Split:
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    labels = np.concatenate([p[1] for p in parts])
    return Split(torch.from_numpy(images), torch.from_numpy(labels))


def read_dataset(name: str, options) -> "Loaded":  # noqa: F821
    """The ``cifar`` reader of ``data/datasets.py``."""
    from deepdive.data.datasets import Loaded
    train, test, classes = load_cifar10(options.data_dir, download=options.download)
    return Loaded(train, test, classes)
