"""The Python API: deepdive.load agrees with predict and evaluate bit for bit; a run rebuilds from model.json
alone; deepdive.train runs training from Python."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import deepdive
from api_runs import FASTNET, copy_of, trained
from conftest import assert_one_line_error
from deepdive.errors import UserError


def test_import_is_cheap_and_the_api_is_lazy():
    code = ("import sys, deepdive; assert 'torch' not in sys.modules; assert callable(deepdive.train); "
            "assert callable(deepdive.load); import deepdive.training.setup; assert callable(deepdive.train); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"  # not even deepdive.load/train's first use imports torch


def test_train_returns_the_summary_and_writes_the_run(tmp_path_factory, tmp_path):
    run, summary = trained("FASTNET", tmp_path_factory)
    assert summary["status"] == "completed" and summary["run"] == str(run) and summary["epochs"] == 1
    assert json.loads((run / "summary.json").read_text()) == summary
    config = json.loads((run / "config.json").read_text())
    assert (config["model"], config["widths"], config["tta"], config["synthetic"]["shape"]) == \
        ("fastnet", [8, 16], "flip", [3, 16, 16])  # keyword arguments resolved as the CLI's flags
    info = json.loads((run / "model.json").read_text())
    assert (info["tta"], info["amp"], info["ema"], info["options"]) == ("flip", False, False,
                                                                         {"widths": [8, 16], "whiten": True, "identity_init": True})
    with pytest.raises(UserError, match="did you mean widths"):
        deepdive.train(out=str(tmp_path / "x"), **{**FASTNET, "widht": [8]})
    with pytest.raises(UserError, match="already exists"):
        deepdive.train(out=str(run), **FASTNET)


def test_load_predict_and_evaluate_agree_exactly(cli, tmp_path_factory, tmp_path):
    run, _ = trained("FASTNET", tmp_path_factory)
    predictor = deepdive.load(run, device="cpu")
    assert predictor.classes == [f"class-{i}" for i in range(4)] and predictor.input_shape == (3, 16, 16)
    assert predictor.tta == "flip" and isinstance(predictor.model, torch.nn.Module)
    assert not predictor.model.training

    # evaluate's accuracy is the argmax agreement of deepdive.load on the test split
    evaluated = cli("evaluate", run, "--json", "--device", "cpu").json()
    from deepdive.training.run_data import prepare_data
    from deepdive.storage.runs import RunDir
    test = prepare_data(RunDir(run).config()).test
    probs = predictor(test.images)
    assert probs.dtype == torch.float64 and probs.shape == (60, 4) and evaluated["examples"] == 60
    assert torch.allclose(probs.sum(1), torch.ones(60, dtype=torch.float64))
    assert (probs.argmax(1) == test.labels).sum().item() / 60 == evaluated["test_accuracy"]

    # independently: normalization from model.json, the mirror view, softmax of the mean logits
    info = json.loads((run / "model.json").read_text())
    mean, std = (torch.tensor(info[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    x = (test.images.float() / 255 - mean) / std
    with torch.no_grad():
        by_hand = torch.softmax(((predictor.model(x) + predictor.model(x.flip(3))) / 2).double(), 1)
    assert torch.allclose(probs, by_hand, atol=1e-6)
    with torch.no_grad():
        assert not torch.allclose(probs, torch.softmax(predictor.model(x).double(), 1), atol=1e-6)  # TTA counts

    # the same five images as files, PNG (lossless): predict, load(files), load(arrays/PIL/tensor), bit for bit
    images = test.images[:5]
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(files[-1])
    printed = cli("predict", run, *files, "--json", "--top-k", "4", "--device", "cpu").json()
    from_cli = torch.tensor([[next(p["probability"] for p in r["predictions"] if p["class"] == c)
                              for c in predictor.classes] for r in printed], dtype=torch.float64)
    nhwc = images.permute(0, 2, 3, 1).numpy()
    for same in (from_cli, predictor(files), predictor([str(f) for f in files]), predictor(nhwc),
                 predictor([Image.fromarray(a) for a in nhwc]), predictor(list(images))):
        assert torch.equal(same, predictor(images))

    # an image of another size is fitted as its file is read
    big = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    assert torch.equal(predictor(big), predictor(tmp_path / "big.png"))
    assert torch.equal(predictor(Image.fromarray(big)), predictor([tmp_path / "big.png"]))


def test_a_run_rebuilds_from_model_json_alone(tmp_path_factory, tmp_path):
    run, _ = trained("FASTNET", tmp_path_factory)
    images = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (6, 3, 16, 16), dtype=np.uint8))
    expected = deepdive.load(run, device="cpu")(images)
    copy = copy_of(run, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "tta": "none", "widths": [64, 64], "whiten": False}))
    assert torch.equal(deepdive.load(copy, device="cpu")(images), expected)  # a changed config.json is not read
    (copy / "config.json").unlink()
    assert torch.equal(deepdive.load(copy, device="cpu")(images), expected)

    # a run made before model.json recorded these takes them from its config.json
    info = json.loads((copy / "model.json").read_text())
    old = {k: v for k, v in info.items() if k not in ("options", "tta", "amp", "ema")}
    (copy / "model.json").write_text(json.dumps(old))
    with pytest.raises(UserError, match="config.json"):
        deepdive.load(copy, device="cpu")
    (copy / "config.json").write_text(json.dumps(config))
    assert torch.equal(deepdive.load(copy, device="cpu")(images), expected)
    (copy / "config.json").write_text(json.dumps({**config, "tta": "none"}))
    assert deepdive.load(copy, device="cpu").tta == "none"


def test_a_scratch_engine_run_loads_with_a_torch_model(tmp_path_factory):
    run, _ = trained("SCRATCH", tmp_path_factory)
    predictor = deepdive.load(run)
    assert predictor.engine.name == "scratch" and isinstance(predictor.model, torch.nn.Module)
    images = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (7, 1, 8, 8), dtype=np.uint8))
    with torch.no_grad():
        on_torch = torch.softmax(predictor.model(predictor.preprocess(images)).double(), 1)
    assert torch.allclose(predictor(images), on_torch, atol=1e-6)  # the same weights on both engines


def test_bad_inputs_are_one_line(cli, tmp_path_factory, tmp_path):
    run, _ = trained("FASTNET", tmp_path_factory)
    predictor = deepdive.load(run, device="cpu")
    for bad, words in ((torch.zeros(1, 3, 16, 16), "uint8"), (np.zeros((2, 2, 2, 2, 3), np.uint8), "shape"),
                       (np.zeros((4, 4, 2), np.uint8), "channels"), ({"a": 1}, "dict"),
                       (tmp_path / "missing.png", "no such file")):
        with pytest.raises(UserError, match=words):
            predictor(bad)
    with pytest.raises(UserError, match="not a run folder"):
        deepdive.load(tmp_path)
    assert_one_line_error(cli("predict", tmp_path / "nope", tmp_path / "x.png"), "does not exist")


def test_flip_shift_views_are_the_translate_augmentation():
    """tta_logits' shift is one slice of the reflect-padded batch (exportable): augment.translate by (1, 1)."""
    from deepdive.data.augment import translate
    from deepdive.training.evaluation import tta_logits
    x = torch.randn(3, 2, 5, 6)
    seen = []
    tta_logits(lambda v: seen.append(v) or v.sum((1, 2, 3))[:, None], x, "flip-shift")
    shifted = translate(x, torch.ones(3, dtype=torch.long), torch.ones(3, dtype=torch.long), 1)
    assert torch.equal(seen[2], shifted) and torch.equal(seen[3], shifted.flip(3))


def test_resume_with_force_records_the_new_settings_in_model_json(cli, tmp_path):
    from conftest import SYNTH
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "1", "--limit-train", "64", "--out", run).code == 0
    assert json.loads((run / "model.json").read_text())["tta"] == "none"
    result = cli("train", "--resume", run, "--epochs", "2", "--tta", "flip", "--force")
    assert result.code == 0, result.err
    assert json.loads((run / "model.json").read_text())["tta"] == "flip"
    assert deepdive.load(run).tta == "flip"


def test_train_takes_path_objects_and_a_shape_string(tmp_path_factory, tmp_path):
    from pathlib import Path

    from api_runs import SCRATCH
    run, summary = trained("SCRATCH", tmp_path_factory)  # made with out=Path, data_dir=Path, shape "1,8,8"
    config = json.loads((run / "config.json").read_text())
    assert (config["out"], config["data_dir"], config["synthetic"]["shape"]) == \
        (str(run), str(run.parent / "data"), [1, 8, 8])
    assert summary["status"] == "completed"
    # init_from as a Path passes the config's checks and reaches the run-folder check (a torch-engine run)
    with pytest.raises(UserError, match="does not exist: give a folder"):
        deepdive.train(out=tmp_path / "i", **{**SCRATCH, "engine": "torch", "init_from": Path(tmp_path / "nope")})
    for bad, words in (({"out": 123}, "out=123 is invalid: give a path"),
                       ({"data_dir": None}, "data_dir=None is invalid"), ({"synthetic_shape": "1x8x8"}, "three ints"),
                       ({"synthetic_shape": 8}, "three ints"), ({"synthetic_shape": [1, 8]}, "three ints")):
        with pytest.raises(UserError, match=words):
            deepdive.train(**{**SCRATCH, "out": tmp_path / "bad", **bad})
    assert list(tmp_path.iterdir()) == []  # nothing half-made


def test_load_refuses_bad_arguments_in_one_line(tmp_path_factory):
    run, _ = trained("SCRATCH", tmp_path_factory)
    for kwargs, words in (({"run": None}, "give the path of a run folder"), ({"run": 5}, "run 5 is invalid"),
                          ({"device": "cuda:x"}, "unknown: give auto, cpu, cuda or cuda:N"),
                          ({"device": f"cuda:{torch.cuda.device_count()}"}, "is not here"),
                          ({"amp": "yes"}, "amp 'yes' is invalid"), ({"amp": 1}, "amp 1 is invalid")):
        with pytest.raises(UserError, match=words):
            deepdive.load(**{"run": run, **kwargs})


def test_predictor_reads_one_path_empty_images_and_layouts(tmp_path_factory, tmp_path):
    run, _ = trained("FASTNET", tmp_path_factory)
    predictor = deepdive.load(run, device="cpu")
    rgb = np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    for one in (str(tmp_path / "x.png"), tmp_path / "x.png"):  # one file, not the string's characters
        [result] = predictor.predict(one, top_k=4)
        assert result["file"] == str(tmp_path / "x.png")
        assert [p["probability"] for p in result["predictions"]] == \
            sorted(predictor(rgb)[0].tolist(), reverse=True)
    for empty in (np.zeros((0, 0), np.uint8), torch.zeros(1, 0, 8, dtype=torch.uint8), Image.new("RGB", (0, 3))):
        with pytest.raises(UserError, match=r"\dx\d pixels has nothing to classify"):
            predictor(empty)
    with pytest.raises(UserError, match=r"torch tensors are channels-first.*permute\(2, 0, 1\)"):
        predictor(torch.from_numpy(rgb))  # HWC tensor
    with pytest.raises(UserError, match=r"NumPy arrays are channels-last.*transpose\(0, 2, 3, 1\)"):
        predictor(np.zeros((2, 3, 16, 16), np.uint8))  # an NCHW array
    with pytest.raises(UserError, match=r"\(3, 16, 16\) is ambiguous.*transpose\(1, 2, 0\).*\[\.\.\., None\]"):
        predictor(np.zeros((3, 16, 16), np.uint8))  # a CHW RGB image or 3 grey images: refused
    grey = np.random.default_rng(5).integers(0, 256, (5, 16, 16), dtype=np.uint8)  # N grey images
    assert torch.equal(predictor(grey), predictor([Image.fromarray(g) for g in grey]))
    assert torch.equal(predictor(grey[:1]), predictor(Image.fromarray(grey[0])))  # (1, H, W): one grey image
