"""The fuzz harness: every reader of an outside file, fed mutated copies of a good file.

Shared by ``tests/test_fuzz.py`` (hypothesis, a short budget in CI) and
``scripts/fuzz.py`` (a longer seeded run whose figures go in the README).
A case passes when the reader ends in a clean load or a clean one-line error
(``UserError``; ``UnreadableImage`` for one image file) with the memory it
traced (``tracemalloc``: Python and NumPy allocations) under
``ceiling(len(data))``; anything else - a traceback, a hang, a blow-up - fails.

Mutations are (kind, position, value) triples, drawn by hypothesis or by a
seeded ``random.Random``: truncation, bit flips, byte overwrites, insertions,
huge declared sizes written over 4 or 8 bytes, repeated slices, and for the
structured files (JSON, state.pt) a value at some key replaced by one of the
wrong kinds in ``WRONG_VALUES``.
"""
from __future__ import annotations

import gzip
import io
import json
import pickle
import shutil
import struct
import tracemalloc
from pathlib import Path

import numpy as np

from deepdive.errors import UserError

KINDS = ("truncate", "flip", "overwrite", "insert", "huge4", "huge8", "repeat", "retype")
WRONG_VALUES = ["x", "", -1, 0, 2 ** 70, -2 ** 64, 1e308, float("inf"), float("nan"), None, True, [], {}, [1] * 7,
                {"a": 1}, "../../etc/passwd", [3, 100000, 100000], 10 ** 9]


def ceiling(size: int) -> int:
    """Memory a case may trace: 64 bytes per byte of input (Python objects from a pickle or JSON) + 32 MB
    (the small legitimate data these seeds describe, and the reader's own working set)."""
    return 64 * size + (32 << 20)


def mutate(data: bytes, ops, structured=None) -> bytes:
    """Apply ``ops`` to ``data``; ``structured(data, pos, value)`` handles "retype" for files that have one."""
    data = bytearray(data)
    for kind, pos, value in ops:
        at = pos % (len(data) + 1)
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at % len(data)] ^= 1 << (value % 8)
        elif kind == "overwrite" and data:
            data[at % len(data)] = value % 256
        elif kind == "insert":
            data[at:at] = bytes([value % 256]) * (1 + value % 5)
        elif kind in ("huge4", "huge8"):
            width = 4 if kind == "huge4" else 8
            big = (0x7FFFFFFF if width == 4 else 0x7FFFFFFFFFFFFFFF) - value
            order = ">" if value % 2 else "<"
            data[at:at + width] = struct.pack(order + ("I" if width == 4 else "Q"), big)
        elif kind == "repeat" and data:
            chunk = data[at:at + 1 + value % 64]
            data[at:at] = chunk * (1 + value % 16)
        elif kind == "retype" and structured is not None:
            data = bytearray(structured(bytes(data), pos, value))
    return bytes(data)


# -- structured mutation -----------------------------------------------------------------------------------
def _leaves(tree, path=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(tree, (list, tuple)) and tree and len(tree) < 50:
        for i, value in enumerate(tree):
            yield from _leaves(value, path + (i,))
    yield path


def _replace(tree, path, value):
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, tuple):
        tree = list(tree)
    tree[head] = _replace(tree[head], rest, value)
    return tree


def retype_json(data: bytes, pos: int, value: int) -> bytes:
    try:
        tree = json.loads(data)
    except ValueError:
        return data
    paths = list(_leaves(tree))
    wrong = WRONG_VALUES[value % len(WRONG_VALUES)]
    return json.dumps(_replace(tree, paths[pos % len(paths)], wrong)).encode()


def retype_state(data: bytes, pos: int, value: int) -> bytes:
    import torch

    try:
        tree = torch.load(io.BytesIO(data), weights_only=True)
    except Exception:
        return data
    paths = list(_leaves(tree))
    pool = WRONG_VALUES + [torch.zeros(2), torch.zeros(0), torch.zeros(3, 3, dtype=torch.int64),
                           torch.zeros(5, dtype=torch.uint8)]
    wrong = pool[value % len(pool)]
    buffer = io.BytesIO()
    torch.save(_replace(tree, paths[pos % len(paths)], wrong), buffer)
    return buffer.getvalue()


# -- the readers -------------------------------------------------------------------------------------------
class Reader:
    """A seed file, where to write a mutated copy, and the call that reads it as deepdive does."""

    name = ""
    structured = None

    def seed(self, work: Path) -> bytes:
        raise NotImplementedError

    def read(self, path: Path) -> None:
        raise NotImplementedError

    def place(self, work: Path, data: bytes) -> Path:
        path = work / self.filename
        path.write_bytes(data)
        return path


class Cifar(Reader):
    name, filename = "cifar", "data_batch_1"

    def seed(self, work):
        rng = np.random.default_rng(1)
        return pickle.dumps({"batch_label": "x", "labels": [1, 2, 3, 4],
                             "data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                             "filenames": [f"{i}.png" for i in range(4)]}, protocol=2)

    def read(self, path):
        from deepdive.data.cifar import MAX_BATCH_BYTES, _parse_batch, _read_capped
        images, labels = _parse_batch(_read_capped(path, MAX_BATCH_BYTES), path)
        assert images.shape[1:] == (3, 32, 32) and len(labels) == len(images)


class Idx(Reader):
    def __init__(self, gz: bool):
        self.gz = gz
        self.name = "idx-gz" if gz else "idx"
        self.filename = "train-images-idx3-ubyte" + (".gz" if gz else "")

    def seed(self, work):
        array = np.random.default_rng(0).integers(0, 256, (6, 5, 4), dtype=np.uint8)
        raw = b"\x00\x00\x08\x03" + struct.pack(">3I", *array.shape) + array.tobytes()
        return gzip.compress(raw) if self.gz else raw

    def read(self, path):
        from deepdive.data.mnist import _read_idx
        assert _read_idx(path, expect_dims=3).dtype == np.uint8


class ImageFile(Reader):
    name, filename = "image", "x.img"
    FORMATS = ("PNG", "JPEG", "BMP", "GIF")

    def __init__(self, fmt="PNG"):
        self.fmt = fmt
        self.name = f"image-{fmt.lower()}"

    def seed(self, work):
        from PIL import Image
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(2).integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(buffer, self.fmt)
        return buffer.getvalue()

    def read(self, path):
        from deepdive.data.images import UnreadableImage, check_header, load_image
        try:
            check_header(path)
            assert load_image(path, (8, 8)).shape == (8, 8, 3)
        except UnreadableImage as exc:  # the clean outcome for one image file: skipped, or refused by --strict
            raise UserError(f"unreadable image ({exc})") from None


class Safetensors(Reader):
    name, filename = "safetensors", "model.safetensors"
    EXPECTED = {"a": (2, 3), "b": (4,)}

    def seed(self, work):
        from deepdive.storage.weights import save_weights
        save_weights(work / "seed.safetensors", {"a": np.ones((2, 3), np.float32), "b": np.arange(4)})
        return (work / "seed.safetensors").read_bytes()

    def read(self, path):
        from deepdive.storage.weights import load_weights
        arrays = load_weights(path, self.EXPECTED)
        assert {k: v.shape for k, v in arrays.items()} == self.EXPECTED


class RunFile(Reader):
    """A file of a finished run folder, read as ``evaluate`` or ``train --resume`` reads it."""

    SYNTH = ["--dataset", "synthetic", "--synthetic-shape", "1,8,8", "--synthetic-classes", "4",
             "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "-b", "32"]

    def __init__(self, filename: str):
        self.filename = filename
        self.name = filename
        self.structured = retype_state if filename == "state.pt" else retype_json
        self.run: Path | None = None

    def seed(self, work):
        from deepdive.cli import main
        self.run = work / "seed-run"
        if not self.run.exists():
            import contextlib
            import os
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                assert main(["-q", "train", *self.SYNTH, "--model", "perceptron", "--out", str(self.run)]) == 0
        return (self.run / self.filename).read_bytes()

    def place(self, work, data):
        folder = work / "run"
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(self.run, folder)
        (folder / self.filename).write_bytes(data)
        return folder / self.filename

    def read(self, path):
        folder = path.parent
        if self.filename == "state.pt":
            _resume_checks(folder)
        else:
            from deepdive.inference.evaluate import evaluate_run
            evaluate_run(folder, device="cpu")


def _resume_checks(folder: Path) -> None:
    """What ``train --resume`` does before it writes: open, load state.pt, rebuild, restore."""
    from deepdive.training.run_data import prepare_data
    from deepdive.training.resume import open_resume
    from deepdive.training.signals import StopFlag
    from deepdive.storage.state_file import load_state
    from deepdive.training.loop import Trainer
    from deepdive.training.setup import _resume_point, build_components

    run, cfg, _ = open_resume(str(folder), {})
    try:
        saved = load_state(run.file("state.pt"))
        bundle = prepare_data(cfg)
        parts = build_components(cfg, bundle)
        trainer = Trainer(cfg, run, bundle, parts.engine, parts.model, parts.optimizer, StopFlag())
        _resume_point(trainer, run, saved)
    finally:
        run.close()


READERS = {r.name: r for r in (Cifar(), Idx(False), Idx(True), *(ImageFile(f) for f in ImageFile.FORMATS),
                               Safetensors(), RunFile("state.pt"), RunFile("model.json"),
                               RunFile("config.json"))}


def run_case(reader: Reader, work: Path, data: bytes) -> tuple[str, int]:
    """("load" | "error", traced peak bytes) for one mutated file; any other outcome raises."""
    path = reader.place(work, data)
    tracemalloc.start()
    try:
        reader.read(path)
        outcome = "load"
    except UserError as exc:
        text = str(exc)
        assert text and "\n" not in text, f"not one line: {text!r}"
        outcome = "error"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= ceiling(len(data)), f"{reader.name}: traced {peak} bytes for a {len(data)}-byte file"
    return outcome, peak
