import logging
import os

import numpy as np
import pytest
from PIL import Image

from conftest import SYNTH, assert_one_line_error
from deepdive.data.imagefolder import load_imagefolder
from deepdive.errors import UserError


def make_tree(root, per_class=4, classes=("cat", "dog", "eel"), size=(40, 30)):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                pixels[..., c % 3] = 255  # a class-coloured channel
                mode_img = Image.fromarray(pixels)
                if i % 2:  # mixed modes and formats, as real folders have
                    mode_img.convert("L").save(folder / f"{i}.png")
                else:
                    mode_img.save(folder / f"{i}.jpg", quality=95)
    return root


def test_loads_resizes_and_converts(tmp_path):
    make_tree(tmp_path)
    train, test, classes = load_imagefolder(tmp_path, 16)
    assert classes == ["cat", "dog", "eel"]
    assert train.images.shape == (12, 3, 16, 16) and test.images.shape == (12, 3, 16, 16)
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # a JPEG of a "cat" keeps its saturated red channel after the resize
    assert train.images[0, 0].float().mean() > 220 > train.images[0, 1].float().mean()


def test_unreadable_files_are_skipped_with_one_warning(tmp_path, caplog):
    make_tree(tmp_path)
    for i in range(5):
        (tmp_path / "train" / "dog" / f"broken{i}.png").write_bytes(b"not an image at all")
    (tmp_path / "test" / "cat" / "notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING, logger="deepdive"):
        train, test, _ = load_imagefolder(tmp_path, 16)
    assert len(train) == 12 and len(test) == 12
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per split
    assert "skipped 5 unreadable" in warnings[0] and "broken0.png" in warnings[0] and "..." in warnings[0]
    assert "notes.txt" in warnings[1]


def test_strict_refuses_unreadable_files(tmp_path, cli):
    make_tree(tmp_path)
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(UserError, match="broken.png"):
        load_imagefolder(tmp_path, 16, strict=True)
    result = cli("train", "--dataset", "imagefolder", "--data-dir", tmp_path, "--epochs", "1", "--strict",
                 "--out", tmp_path / "run")
    assert_one_line_error(result, "cannot read image", "broken.png", "--strict")
    assert not (tmp_path / "run").exists()


def test_a_class_with_only_unreadable_files_is_refused(tmp_path):
    make_tree(tmp_path)
    for f in (tmp_path / "train" / "eel").iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(UserError, match="eel hold no readable image"):
        load_imagefolder(tmp_path, 16)


def test_non_utf8_and_long_names(tmp_path, cli, caplog):
    make_tree(tmp_path)
    odd = os.fsencode(tmp_path / "train" / "cat") + b"/caf\xe9-\xff.png"
    with open(odd, "wb") as f:
        f.write(b"not an image")
    long_name = tmp_path / "train" / "cat" / ("x" * 250 + ".png")
    long_name.write_bytes(b"also not an image")
    result = cli("train", "--dataset", "imagefolder", "--data-dir", tmp_path, "--epochs", "1", "--strict",
                 "--image-size", "8", "--model", "perceptron", "--out", tmp_path / "run")
    assert_one_line_error(result, "cannot read image")
    result = cli("train", "--dataset", "imagefolder", "--data-dir", tmp_path, "--epochs", "1",
                 "--image-size", "8", "--model", "perceptron", "--out", tmp_path / "run2", "--json")
    assert result.code == 0, result.err
    assert "skipped 2 unreadable" in caplog.text
    too_long = str(tmp_path / ("y" * 5000))
    assert_one_line_error(cli("train", "--dataset", "imagefolder", "--data-dir", too_long), "imagefolder")
    assert_one_line_error(cli("train", *SYNTH, "--out", too_long + "/run"), "")


def test_missing_split_and_empty_class(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_imagefolder(tmp_path / "nope", 32)
    make_tree(tmp_path)
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(UserError, match="empty"):
        load_imagefolder(tmp_path, 32)


def test_train_on_imagefolder(tmp_path, cli):
    make_tree(tmp_path, per_class=10)
    result = cli("train", "--model", "perceptron", "--dataset", "imagefolder", "--data-dir", tmp_path,
                 "--image-size", "8", "--epochs", "3", "--out", tmp_path / "run", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["status"] == "completed" and summary["train_examples"] == 30
