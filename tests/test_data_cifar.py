import contextlib
import functools
import hashlib
import http.server
import threading
import logging
import pickle
import tarfile

import numpy as np
import pytest

from cifar_files import CLASSES, Payload, write_cifar
from conftest import assert_one_line_error
from deepdive.data import cifar
from deepdive.data.cifar import load_cifar10
from deepdive.data.safe_pickle import RefusedPickle, load_cifar_pickle
from deepdive.errors import UserError


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_reads_official_layout(tmp_path, bytes_keys):
    folder = write_cifar(tmp_path, per_batch=20, bytes_keys=bytes_keys)
    train, test, classes = load_cifar10(tmp_path, download=False)
    assert train.images.shape == (100, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert classes == CLASSES
    raw = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="latin1")
    data = raw[b"data" if bytes_keys else "data"]
    # row-major RGB planes: the first 1024 bytes are the red channel of image 0
    assert np.array_equal(train.images[0, 0].numpy().ravel(), data[0, :1024])
    assert train.labels[:10].tolist() == list(range(10))


def test_md5_mismatch_warns_once_and_loads_and_the_cache_does_not_repeat_it(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "cache"))
    write_cifar(tmp_path)
    for attempt in range(2):  # decoded, then from the cache
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="deepdive"):
            train, _, _ = load_cifar10(tmp_path, download=False)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == (1 if attempt == 0 else 0)  # said once for these files (issue 24)
        assert attempt or "differ from the official release" in warnings[0].getMessage()
        assert len(train) == 100
    assert len(list((tmp_path / "cache").glob("cifar10-*.pt"))) == 1


def test_numpy1_array_names_are_accepted(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(2, 6)
    blob = pickle.dumps({"data": arr}, protocol=2)
    for old, new in ((b"numpy._core.multiarray", b"numpy.core.multiarray"),
                     (b"numpy.core.multiarray", b"numpy._core.multiarray")):
        variant = blob.replace(old, new) if old in blob else blob
        assert np.array_equal(load_cifar_pickle(variant)["data"], arr)


def test_code_in_a_pickle_is_refused_and_never_runs(tmp_path, cli):
    folder = write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": Payload(marker)}, protocol=2))
    with pytest.raises(RefusedPickle):
        load_cifar_pickle((folder / "data_batch_3").read_bytes())
    result = cli("train", "--model", "perceptron", "--dataset", "cifar10", "--data-dir", tmp_path,
                 "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(result, "refused to load", "data_batch_3", ".system")
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_code_in_meta_pickle_is_refused(tmp_path):
    folder = write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "batches.meta").write_bytes(pickle.dumps(Payload(marker), protocol=4))
    with pytest.raises(UserError, match="refused"):
        load_cifar10(tmp_path, download=False)
    assert not marker.exists()


def test_truncated_batch_is_a_clear_error(tmp_path):
    folder = write_cifar(tmp_path)
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="test_batch is truncated or corrupt"):
        load_cifar10(tmp_path, download=False)


def test_wrong_structure_is_a_clear_error(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": np.zeros((3, 10), np.uint8), "labels": [0] * 3}))
    with pytest.raises(UserError, match="no uint8 'data' array"):
        load_cifar10(tmp_path, download=False)
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1]}))
    with pytest.raises(UserError, match="labels that do not match"):
        load_cifar10(tmp_path, download=False)


def test_missing_and_no_download(tmp_path, cli):
    result = cli("train", "--dataset", "cifar10", "--data-dir", tmp_path / "nowhere", "--no-download")
    assert_one_line_error(result, "CIFAR-10 not found", "cifar-10-batches-py")


def test_incomplete_folder(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_5").unlink()
    with pytest.raises(UserError, match="incomplete.*data_batch_5"):
        load_cifar10(tmp_path, download=False)


def test_failed_download_is_one_line_and_leaves_no_archive(tmp_path, cli, monkeypatch):
    monkeypatch.setattr(cifar, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # nothing listens there
    result = cli("train", "--model", "perceptron", "--dataset", "cifar10", "--data-dir", tmp_path / "d")
    assert_one_line_error(result, "could not download CIFAR-10", "put a copy of cifar-10-batches-py/")
    assert not (tmp_path / "d" / cifar.ARCHIVE).exists()


@contextlib.contextmanager
def serve(folder):
    """An HTTP server on loopback serving ``folder``, for the real download code."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_archive(tmp_path):
    src = tmp_path / "src"
    write_cifar(src)
    (tmp_path / "www").mkdir()
    archive = tmp_path / "www" / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def test_download_from_local_server(tmp_path, monkeypatch):
    """The real download path (torchvision's downloader + md5 check), served over loopback."""
    archive = make_archive(tmp_path)
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    with serve(archive.parent) as base:
        monkeypatch.setattr(cifar, "URL", f"{base}/{archive.name}")
        train, test, _ = load_cifar10(tmp_path / "data", download=True)
    assert len(train) == 100 and len(test) == 20
    assert (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").exists()
    assert not (tmp_path / "data" / cifar.ARCHIVE).exists()


def test_download_with_wrong_md5_is_refused(tmp_path, monkeypatch):
    archive = make_archive(tmp_path)
    with serve(archive.parent) as base, pytest.raises(UserError, match="could not download"):
        monkeypatch.setattr(cifar, "URL", f"{base}/{archive.name}")
        load_cifar10(tmp_path / "data", download=True)
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists()


def test_the_size_cap_admits_a_full_batch_as_python_3_pickles_it():
    """Protocol 2 from Python 3 stores pixel bytes as latin-1 text in UTF-8: bytes >= 128 take two. A full
    batch of bright pixels (the worst case) must still be under the cap (a 40 MiB cap refused real copies)."""
    import numpy as np

    from deepdive.data.cifar import MAX_BATCH_BYTES
    batch = {"batch_label": "b", "labels": [0] * 10000, "data": np.full((10000, 3072), 255, np.uint8),
             "filenames": [f"{i:05d}_airplane.png" for i in range(10000)]}
    assert len(pickle.dumps(batch, protocol=2)) <= MAX_BATCH_BYTES
