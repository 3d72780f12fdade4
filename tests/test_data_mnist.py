import gzip
import struct

import numpy as np
import pytest

from conftest import FASHION_DIR
from deepdive.data.mnist import FILES, load_mnist_like, read_idx_images
from deepdive.errors import UserError


def write_idx(path, array, gz=True, header_shape=None, magic=b"\x00\x00\x08"):
    array = np.asarray(array, dtype=np.uint8)
    shape = header_shape or array.shape
    raw = magic + bytes([len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + array.tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def write_set(folder, n_train=30, n_test=10, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    write_idx(folder / (FILES["train_images"] + suffix), rng.integers(0, 256, (n_train, 28, 28)), gz)
    write_idx(folder / (FILES["train_labels"] + suffix), np.arange(n_train) % 10, gz)
    write_idx(folder / (FILES["test_images"] + suffix), rng.integers(0, 256, (n_test, 28, 28)), gz)
    write_idx(folder / (FILES["test_labels"] + suffix), np.arange(n_test) % 10, gz)
    return folder


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_reads_debian_fashion_mnist(tmp_path):
    train, test, classes = load_mnist_like("fashion-mnist", tmp_path)  # empty data dir: falls back to Debian's
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert classes[0] == "T-shirt/top" and classes[9] == "Ankle boot"
    assert train.labels.bincount().tolist() == [6000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
    assert 70 < train.images.float().mean() < 75  # Fashion-MNIST's mean pixel is 72.9


@pytest.mark.parametrize("layout", ["FashionMNIST/raw", "FashionMNIST", "."])
@pytest.mark.parametrize("gz", [True, False])
def test_torchvision_and_flat_layouts(tmp_path, layout, gz):
    write_set(tmp_path / layout, gz=gz)
    train, test, _ = load_mnist_like("fashion-mnist", tmp_path)
    assert len(train) == 30 and len(test) == 10


def test_mnist_missing_files(tmp_path):
    with pytest.raises(UserError, match="mnist idx files not found"):
        load_mnist_like("mnist", tmp_path)


def test_truncated_gz(tmp_path):
    folder = write_set(tmp_path / "MNIST/raw")
    path = folder / (FILES["train_images"] + ".gz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="truncated or not valid gzip"):
        load_mnist_like("mnist", tmp_path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "x.gz"
    write_idx(path, np.zeros((2, 28, 28)), magic=b"\x00\x00\x0d")
    with pytest.raises(UserError, match="not an idx file of unsigned bytes"):
        read_idx_images(path)


def test_wrong_dimensions(tmp_path):
    folder = write_set(tmp_path)
    write_idx(folder / (FILES["train_images"] + ".gz"), np.zeros(30))  # 1-D where images belong
    with pytest.raises(UserError, match="has 1 dimensions but should hold images"):
        load_mnist_like("mnist", tmp_path)


def test_header_claiming_huge_count_is_refused_before_allocation(tmp_path):
    path = tmp_path / "huge"
    write_idx(path, np.zeros((2, 28, 28)), gz=False, header_shape=(10 ** 9, 1000, 1000))
    with pytest.raises(UserError, match="declares 1000000.0 GB of data"):
        read_idx_images(path)


def test_mismatched_counts(tmp_path):
    folder = write_set(tmp_path)
    write_idx(folder / (FILES["test_labels"] + ".gz"), np.arange(7) % 10)
    with pytest.raises(UserError, match="holds 10 images but .* holds 7 labels"):
        load_mnist_like("mnist", tmp_path)


def test_label_out_of_range(tmp_path):
    folder = write_set(tmp_path)
    write_idx(folder / (FILES["test_labels"] + ".gz"), np.full(10, 12))
    with pytest.raises(UserError, match="has label 12"):
        load_mnist_like("mnist", tmp_path)
