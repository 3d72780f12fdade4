"""Crafted files of the kinds a careless user or an attacker leaves in a data folder or a run folder."""
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

try:  # numpy 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct

from cifar_files import TRAIN


class RawArray:
    """Pickles as numpy does - ``_reconstruct(ndarray, (0,), b'b')`` then BUILD - with any state at all."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return (_reconstruct, (np.ndarray, (0,), b"b"), self.state)


class RawDtype:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (np.dtype, (self.code, False, True))


def nine_byte_pickle() -> bytes:
    """PROTO 2, BINBYTES declaring 2 GB: CPython's C unpickler allocates the 2 GB before reading."""
    return b"\x80\x02B\xff\xff\xff\x7f"


def object_dtype_pickle() -> bytes:
    """An object array of 10^9 entries from ~150 bytes (the pickle's own list fills it)."""
    return pickle.dumps({"data": RawArray((1, (10 ** 9,), RawDtype("O8"), False, [None])), "labels": []}, protocol=2)


def blank_images_pickle() -> bytes:
    """A 'data' array declaring 150,000 images while carrying 6 bytes of pixels."""
    return pickle.dumps({"data": RawArray((1, (150_000, 3072), np.dtype("u1"), False, b"\0" * 6)),
                         "labels": [0] * 3}, protocol=2)


def cifar_folder(root: Path, batch: bytes) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in TRAIN + ["test_batch"]:
        (folder / name).write_bytes(batch)
    return root


def cifar_labels_batch(labels) -> bytes:
    return pickle.dumps({"data": np.zeros((len(labels), 3072), np.uint8), "labels": labels}, protocol=2)


def gzip_idx_bomb(folder: Path, megabytes: int = 1000) -> Path:
    """MNIST idx files whose train images declare 60,000 28x28 images and inflate to ``megabytes`` MB."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb", compresslevel=9) as f:
        f.write(struct.pack(">HBB3I", 0, 8, 3, 60000, 28, 28))
        zeros = bytes(1 << 20)
        for _ in range(megabytes):
            f.write(zeros)
    for stem, shape in (("train-labels-idx1-ubyte", (60000,)), ("t10k-images-idx3-ubyte", (10, 28, 28)),
                        ("t10k-labels-idx1-ubyte", (10,))):
        with gzip.open(folder / (stem + ".gz"), "wb") as f:
            f.write(struct.pack(f">HBB{len(shape)}I", 0, 8, len(shape), *shape) + bytes(int(np.prod(shape))))
    return folder


def reused_string_pickle(size: int = 10_000, times: int = 20_000) -> bytes:
    """One memoized string fed to ``_codecs.encode`` ``times`` times: size x times bytes from size bytes."""
    text = b"a" * size
    return (b"\x80\x02c_codecs\nencode\nq\x000X" + struct.pack("<I", size) + text
            + b"X\x06\x00\x00\x00latin1\x86q\x010]" + b"h\x00h\x01Ra" * times + b".")


def deflated_copy(path: Path) -> None:
    """Rewrite a torch.save zip with every member deflated (a zip bomb needs only that)."""
    import zipfile
    with zipfile.ZipFile(path) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info, data in members:
            out.writestr(info.filename, data)
