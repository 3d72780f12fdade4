import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error
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


def test_unreadable_file_is_an_error_naming_it(tmp_path, cli):
    make_tree(tmp_path)
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(UserError, match="broken.png"):
        load_imagefolder(tmp_path, 16)
    result = cli("train", "--dataset", "imagefolder", "--data-dir", tmp_path, "--epochs", "1",
                 "--out", tmp_path / "run")
    assert_one_line_error(result, "cannot read image", "broken.png")
    assert not (tmp_path / "run").exists()


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
