import json

import numpy as np
from PIL import Image

from conftest import assert_one_line_error
from test_data_imagefolder import make_tree


def trained_run(cli, tmp_path, size=8):
    root = make_tree(tmp_path / "tree", per_class=12)
    run = tmp_path / "run"
    result = cli("train", "--model", "simplenet", "--dataset", "imagefolder", "--data-dir", root,
                 "--image-size", size, "--epochs", "5", "--lr", "1e-2", "--out", run, "--json")
    assert result.code == 0, result.err
    return root, run


def test_predict_agrees_with_evaluate_on_the_same_tree(cli, tmp_path):
    root, run = trained_run(cli, tmp_path)
    evaluated = cli("evaluate", run, "--dataset", "imagefolder", "--data-dir", root, "--json").json()
    result = cli("predict", run, root / "test", "--json", "--top-k", "2")
    assert result.code == 0, result.err
    predictions = result.json()
    assert len(predictions) == evaluated["examples"] == 36
    correct = sum(p["predictions"][0]["class"] == p["file"].split("/")[-2] for p in predictions)
    assert correct / len(predictions) == evaluated["test_accuracy"]
    for p in predictions:
        probs = [q["probability"] for q in p["predictions"]]
        assert len(probs) == 2 and probs[0] >= probs[1] and 0 < sum(probs) <= 1 + 1e-9


def test_any_size_and_mode_and_non_images(cli, tmp_path):
    _, run = trained_run(cli, tmp_path)
    big = tmp_path / "big.png"
    Image.fromarray(np.full((300, 200, 3), (255, 0, 0), np.uint8)).save(big)
    grey = tmp_path / "grey.bmp"
    Image.fromarray(np.full((10, 10), 128, np.uint8)).save(grey)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((5, 9, 4), np.uint8)).save(rgba)
    note = tmp_path / "note.txt"
    note.write_text("not an image")
    result = cli("predict", run, big, grey, rgba, note, tmp_path / "missing.jpg", "--json")
    assert result.code == 1  # two files could not be predicted: a partial failure is not a success
    out = result.json()
    assert [("predictions" in r) for r in out] == [True, True, True, False, False]
    assert len(out[0]["predictions"]) == 3  # top-5 capped at the 3 classes
    assert out[0]["predictions"][0]["class"] == "cat"  # the red class
    assert "error" in out[3] and "error" in out[4]
    text = cli("predict", run, big, note)
    assert text.code == 1 and "big.png: cat" in text.out and "note.txt: error" in text.out


def test_no_image_predicted_exits_2(cli, tmp_path):
    _, run = trained_run(cli, tmp_path)
    note = tmp_path / "note.txt"
    note.write_text("x")
    result = cli("predict", run, note, "--json")
    assert result.code == 2 and json.loads(result.out)[0]["error"]
    assert_one_line_error(cli("predict", run, note, "--top-k", "0"), "--top-k")
    assert_one_line_error(cli("predict", tmp_path / "nope", note), "does not exist")


def test_grey_model_reads_colour_files(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--dataset", "synthetic", "--synthetic-shape", "1,8,8", "--epochs", "1", "--out", run).code == 0
    img = tmp_path / "colour.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(img)
    result = cli("predict", run, img, "--json")
    assert result.code == 0 and len(result.json()[0]["predictions"]) == 5
