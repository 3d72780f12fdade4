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


# -- layouts, resize modes, conversions (issue 12, point 6) ------------------------------------------------------
LEVEL = {"train": 10, "val": 100, "test": 200}  # each folder's images are this grey: where a split came from
COUNT = {"train": 3, "val": 1, "test": 2}  # images per class in each folder


def make_layout(root, folders, classes=("a", "b")):
    for folder in folders:
        for c, name in enumerate(classes):
            (root / folder / name).mkdir(parents=True)
            for i in range(COUNT[folder]):
                pixels = np.full((8, 8, 3), LEVEL[folder], np.uint8)
                pixels[0, 0] = (c, i, 0)
                Image.fromarray(pixels).save(root / folder / name / f"{i}.png")
    return root


def stripes(width=16, height=8):
    """Red left quarter, green centre half, blue right quarter."""
    pixels = np.zeros((height, width, 3), np.uint8)
    q = width // 4
    pixels[:, :q, 0] = 255
    pixels[:, q:width - q, 1] = 255
    pixels[:, width - q:, 2] = 255
    return pixels


@pytest.mark.parametrize("folders, reported, validation", [(("train", "test"), "test", None),
                                                          (("train", "val"), "val", None),
                                                          (("train", "val", "test"), "test", "val")])
def test_each_layout_assigns_its_folders(tmp_path, folders, reported, validation):
    from deepdive.data.imagefolder import load_imagefolder_layout

    data = load_imagefolder_layout(make_layout(tmp_path, folders), 8)
    for split, folder in ((data.train, "train"), (data.test, reported), (data.val, validation)):
        if folder is None:
            assert split is None
            continue
        assert len(split) == 2 * COUNT[folder]
        assert (split.images[:, :, 4, 4] == LEVEL[folder]).all()
    assert data.source["test_folder"] == reported and data.source.get("val_folder") == validation


def test_val_folder_is_reported_or_selects_the_best_epoch(tmp_path, cli, caplog):
    import json

    args = ["train", "--model", "perceptron", "--dataset", "imagefolder", "--image-size", "8", "--json"]
    make_layout(tmp_path / "tv", ("train", "val"))
    summary = cli(*args, "--data-dir", tmp_path / "tv", "--epochs", "1", "--out", tmp_path / "r1").json()
    assert summary["data_layout"] == "train+val" and summary["test_folder"] == "val"
    assert summary["test_examples"] == 2 * COUNT["val"] and summary["val_examples"] == 0
    assert "val/ is held out and reported as the test accuracy" in caplog.text
    make_layout(tmp_path / "tvt", ("train", "val", "test"))
    result = cli(*args, "--data-dir", tmp_path / "tvt", "--epochs", "2", "--out", tmp_path / "r2")
    summary = result.json()
    assert summary["test_folder"] == "test" and summary["val_folder"] == "val"
    assert summary["test_examples"] == 2 * COUNT["test"] and summary["val_examples"] == 2 * COUNT["val"]
    records = [json.loads(line) for line in (tmp_path / "r2" / "metrics.jsonl").read_text().splitlines()]
    assert summary["best_metric"] == "val_accuracy"
    assert summary["best_value"] == max(r["val_accuracy"] for r in records)
    assert json.loads((tmp_path / "r2" / "summary.json").read_text())["test_folder"] == "test"
    assert_one_line_error(cli(*args, "--data-dir", tmp_path / "tvt", "--val-split", "0.5", "--out", tmp_path / "r3"),
                          "--val-split", "val")


def test_single_folder_needs_val_split_and_splits_stratified(tmp_path, cli):
    import torch

    from deepdive.data.imagefolder import load_imagefolder_layout

    root = tmp_path / "one"
    for c, (name, n) in enumerate({"a": 8, "b": 4}.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8, 3), 20 * c + i + 1, np.uint8)).save(root / name / f"{i}.png")
    with pytest.raises(UserError, match="--val-split F.*train/"):
        load_imagefolder_layout(root, 8)
    args = ["train", "--model", "perceptron", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "8",
            "--epochs", "1", "--json"]
    assert_one_line_error(cli(*args, "--out", tmp_path / "r0"), "--val-split", "train/")
    assert not (tmp_path / "r0").exists()

    def values(split):
        return sorted(split.images[:, 0, 4, 4].tolist())

    first = load_imagefolder_layout(root, 8, val_split=0.25, seed=0)
    assert torch.bincount(first.test.labels).tolist() == [2, 1]  # a quarter of each class (at least one)
    assert torch.bincount(first.train.labels).tolist() == [6, 3]
    assert sorted(values(first.train) + values(first.test)) == [1, 2, 3, 4, 5, 6, 7, 8, 21, 22, 23, 24]
    assert values(load_imagefolder_layout(root, 8, val_split=0.25, seed=0).test) == values(first.test)
    assert values(load_imagefolder_layout(root, 8, val_split=0.25, seed=1).test) != values(first.test)
    summary = cli(*args, "--val-split", "0.25", "--out", tmp_path / "r1").json()
    assert summary["data_layout"] == "single" and summary["test_folder"] is None
    assert (summary["train_examples"], summary["test_examples"], summary["val_examples"]) == (9, 3, 0)
    (tmp_path / "half" / "train" / "a").mkdir(parents=True)
    with pytest.raises(UserError, match="neither test/ nor val/"):
        load_imagefolder_layout(tmp_path / "half", 8)


def test_crop_and_squash_pixels(tmp_path):
    from deepdive.data.images import load_image

    Image.fromarray(stripes()).save(tmp_path / "wide.png")
    Image.fromarray(stripes().transpose(1, 0, 2).copy()).save(tmp_path / "tall.png")
    green, red, blue = [0, 255, 0], [255, 0, 0], [0, 0, 255]
    wide_crop = load_image(tmp_path / "wide.png", (8, 8), resize_mode="crop")
    assert np.array_equal(wide_crop, stripes()[:, 4:12])  # the centre 8x8 square, untouched: all green
    assert (wide_crop == green).all()
    assert (load_image(tmp_path / "tall.png", (8, 8), resize_mode="crop") == green).all()
    squash = load_image(tmp_path / "wide.png", (8, 8), resize_mode="squash")  # 16 columns into 8
    assert (squash[:, 0] == red).all() and (squash[:, 7] == blue).all() and (squash[:, 3:5] == green).all()
    tall = load_image(tmp_path / "tall.png", (8, 8), resize_mode="squash")
    assert (tall[0] == red).all() and (tall[7] == blue).all()
    with pytest.raises(UserError, match="resize mode"):
        from deepdive.config.train_config import TrainConfig
        TrainConfig(resize_mode="stretch")


def test_a_resize_mode_never_reads_the_other_modes_cache(tmp_path, monkeypatch):
    from deepdive.data import imagefolder

    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "cache"))
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / "d" / split / name).mkdir(parents=True)
            Image.fromarray(stripes()).save(tmp_path / "d" / split / name / "0.png")
    calls = {"n": 0}
    real = imagefolder._decode

    def counting(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(imagefolder, "_decode", counting)
    crop = imagefolder.load_imagefolder(tmp_path / "d", 8, resize_mode="crop")[0].images
    squash = imagefolder.load_imagefolder(tmp_path / "d", 8, resize_mode="squash")[0].images
    assert calls["n"] == 4  # both decoded
    assert (crop[:, 0] == 0).all() and (squash[:, 0, :, 0] == 255).all()  # crop: no red; squash: a red edge
    again = imagefolder.load_imagefolder(tmp_path / "d", 8, resize_mode="crop")[0].images
    assert calls["n"] == 4 and torch_equal(again, crop)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def torch_equal(a, b):
    import torch
    return torch.equal(a, b)


def write_mixed_modes(root):
    """train/a: one image of each mode that needs converting; train/b and test/: plain RGB and grey."""
    for split in ("train", "test"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
    a = root / "train" / "a"
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(a / "grey.png")
    Image.fromarray(np.full((8, 8), 0x8080, np.uint16)).save(a / "deep.png")  # 16-bit: 32896 -> 128
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (0, 0, 255, 255)  # opaque blue left, fully transparent (black underneath) right
    Image.fromarray(rgba).save(a / "alpha.png")
    palette = Image.fromarray(np.full((8, 8, 3), (200, 10, 10), np.uint8)).convert("P", palette=Image.ADAPTIVE)
    palette.save(a / "palette.png")
    Image.fromarray(np.full((8, 8), 255, np.uint8)).convert("1").save(a / "bw.png")
    for i, folder in enumerate((root / "train" / "b", root / "test" / "a", root / "test" / "b")):
        Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(folder / "rgb.png")
        Image.fromarray(np.full((8, 8), 90 + i, np.uint8)).save(folder / "grey.png")
    return root


def test_conversions_are_right_and_stated_once(tmp_path, monkeypatch, caplog):
    from deepdive.data.imagefolder import load_imagefolder_layout
    from deepdive.data.images import load_image

    root = write_mixed_modes(tmp_path / "d")
    a = root / "train" / "a"
    assert (load_image(a / "grey.png", (8, 8)) == 77).all()
    assert (load_image(a / "deep.png", (8, 8)) == 128).all()  # scaled, not clipped to white
    alpha = load_image(a / "alpha.png", (8, 8))
    assert (alpha[:, :4] == [0, 0, 255]).all() and (alpha[:, 4:] == 255).all()  # transparency onto white
    assert (load_image(a / "bw.png", (8, 8)) == 255).all()
    assert (load_image(a / "palette.png", (8, 8)) == [200, 10, 10]).all()
    expected = ("converted 4 grayscale, 1 16-bit grayscale, 1 RGBA, 1 black-and-white and 1 palette images "
                "to RGB (transparency flattened onto white)")
    for streaming in (False, False, True):  # decoded, then from the cache, then streamed from disk
        if streaming:
            monkeypatch.setattr("deepdive.data.imagefolder.memory_limit", lambda: 1)  # decoded data may take 1 byte
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="deepdive"):
            load_imagefolder_layout(root, 8, workers=0)
        said = [r.getMessage() for r in caplog.records if "converted" in r.getMessage()]
        assert said == [expected]


def test_predict_reads_files_the_way_the_run_was_trained(tmp_path, cli, caplog):
    import json

    root = tmp_path / "d"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(root / "train" / "a" / "grey.png")
    result = cli("train", "--model", "perceptron", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "8",
                 "--epochs", "1", "--out", tmp_path / "run", "--json")
    assert result.code == 0, result.err
    assert caplog.text.count("converted 1 grayscale image to RGB") == 1
    info_path = tmp_path / "run" / "model.json"
    info = json.loads(info_path.read_text())
    assert info["resize_mode"] == "crop"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["resize_mode"] == "crop"
    Image.fromarray(stripes()).save(tmp_path / "wide.png")
    Image.fromarray(stripes()[:, 4:12]).save(tmp_path / "centre.png")  # 8x8: no mode resizes it
    Image.fromarray(stripes()).resize((8, 8), Image.BILINEAR).save(tmp_path / "squashed.png")

    def probabilities(name):
        out = cli("predict", tmp_path / "run", tmp_path / name, "--top-k", "2", "--json")
        assert out.code == 0, out.err
        return sorted((p["class"], p["probability"]) for p in out.json()[0]["predictions"])

    assert probabilities("wide.png") == probabilities("centre.png") != probabilities("squashed.png")
    del info["resize_mode"]  # a run from before --resize-mode: it squashed
    info_path.write_text(json.dumps(info))
    assert probabilities("wide.png") == probabilities("squashed.png")
