"""A few hundred randomly corrupted data files: every failure must be a clean UserError."""
import gzip
import io
import pickle
import random
import struct

import numpy as np
import pytest
from PIL import Image

from deepdive.data.cifar import _parse_batch
from deepdive.data.imagefolder import UnreadableImage, load_image
from deepdive.data.mnist import _read_idx
from deepdive.errors import UserError


def corrupt(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.choice(["truncate", "flip", "splice", "header", "empty"])
    if kind == "truncate":
        return bytes(data[: rng.randrange(0, len(data))])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256)
        return bytes(data)
    if kind == "splice":
        i = rng.randrange(len(data))
        return bytes(data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))) + data[i:])
    if kind == "header":
        for i in range(min(16, len(data))):
            if rng.random() < 0.3:
                data[i] = rng.randrange(256)
        return bytes(data)
    return b""


def idx_bytes(images: bool) -> bytes:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (6, 5, 4) if images else (6,), dtype=np.uint8)
    return b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.mark.parametrize("seed", range(150))
def test_corrupted_idx_files(tmp_path, seed):
    rng = random.Random(seed)
    images = seed % 2 == 0
    raw = corrupt(idx_bytes(images), rng)
    gz = seed % 3 == 0
    path = tmp_path / ("f.gz" if gz else "f")
    if gz:
        packed = gzip.compress(raw)
        path.write_bytes(corrupt(packed, rng) if seed % 5 == 0 else packed)
    else:
        path.write_bytes(raw)
    try:
        array = _read_idx(path, expect_dims=3 if images else 1)
        assert array.dtype == np.uint8
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)


def cifar_bytes() -> bytes:
    rng = np.random.default_rng(1)
    return pickle.dumps({"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [1, 2, 3, 4],
                         "batch_label": "x"}, protocol=2)


@pytest.mark.parametrize("seed", range(100))
def test_corrupted_cifar_batches(tmp_path, seed):
    raw = corrupt(cifar_bytes(), random.Random(1000 + seed))
    try:
        images, labels = _parse_batch(raw, tmp_path / "data_batch_1")
        assert images.shape[1:] == (3, 32, 32) and len(labels) == len(images)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)


def image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("seed", range(60))
def test_corrupted_images(tmp_path, seed):
    fmt = ["PNG", "JPEG", "BMP"][seed % 3]
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(corrupt(image_bytes(fmt), random.Random(2000 + seed)))
    try:
        assert load_image(path, (8, 8)).shape == (8, 8, 3)
    except UnreadableImage:
        pass
