"""torchvision/timm models, pretrained weights offline, fine-tuning (issue: the article's invitation)."""
import json

import numpy as np
import pytest
import torch

from conftest import SYNTH, assert_one_line_error

# CIFAR-shaped synthetic data, a handful of images: a step or two of a ResNet-18 on the CPU
CIFAR_SHAPED = ["--dataset", "synthetic", "--synthetic-shape", "3,32,32", "--synthetic-classes", "4",
                "--config"]


def synthetic_config(tmp_path, shape=(3, 32, 32), classes=4, train=16, test=8):
    path = tmp_path / f"synthetic-{'x'.join(map(str, shape))}-{classes}.json"
    path.write_text(json.dumps({"dataset": "synthetic", "synthetic": {"shape": list(shape), "classes": classes,
                                                                       "train": train, "test": test}}))
    return path


def weights_of(run):
    from safetensors.numpy import load_file
    return load_file(str(run / "model.safetensors"))


@pytest.mark.parametrize("model", ["tv:resnet18", "tv:mobilenet_v3_small"])
def test_torchvision_models_train_a_step_on_cifar_shaped_data(cli, tmp_path, model):
    from deepdive.models.registry import build_model
    built = build_model(model, torch.nn, torch.nn.functional, (3, 32, 32), 4, small_input=True, pretrained=False)
    first = next(m for m in built.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)  # --small-input's stem
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in built.net.modules())
    plain = build_model(model, torch.nn, torch.nn.functional, (3, 32, 32), 4, small_input=False, pretrained=False)
    assert next(m for m in plain.net.modules() if isinstance(m, torch.nn.Conv2d)).stride == (2, 2)
    before = {k: v.clone() for k, v in built.state_dict().items()}
    run = tmp_path / "run"
    result = cli("train", "--config", synthetic_config(tmp_path), "--model", model, "--small-input", "--epochs", "1",
                 "-b", "8", "--optimizer", "sgd", "--out", run, "--json")
    assert result.code == 0, result.err
    info = json.loads((run / "model.json").read_text())
    assert info["model"] == model and info["options"] == {"small_input": True, "pretrained": False}
    after = weights_of(run)
    assert set(after) == {k for k in before}  # the same architecture as build_model's
    changed = [k for k in after if k.endswith("weight") and not np.array_equal(after[k], before[k].numpy())]
    assert changed  # (the run's seed drew other initial weights; the point is that it trained and rebuilt)
    assert cli("evaluate", run, "--json").json()["examples"] == 8


def test_inputs_below_an_architectures_minimum_are_resized_inside_the_model(caplog):
    import logging
    from deepdive.models.registry import build_model
    caplog.set_level(logging.INFO, logger="deepdive")
    net = build_model("tv:resnet18", torch.nn, torch.nn.functional, (1, 8, 8), 3)
    assert net.resize_to is None  # a ResNet accepts tiny inputs (adaptive pooling)
    squeeze = build_model("tv:squeezenet1_1", torch.nn, torch.nn.functional, (1, 8, 8), 3)
    assert squeeze.resize_to == (17, 17)  # SqueezeNet's declared smallest input
    inception = build_model("tv:inception_v3", torch.nn, torch.nn.functional, (1, 32, 32), 3)
    assert inception.resize_to == (75, 75) and "75x75" in inception.input_note
    assert inception.repeat  # one grey channel repeated to RGB
    pretrained = build_model("tv:inception_v3", torch.nn, torch.nn.functional, (3, 32, 32), 3, pretrained=True)
    assert pretrained.resize_to == (299, 299) and pretrained.net.transform_input


def test_unknown_and_misplaced_model_options_are_one_line(cli, tmp_path):
    result = cli("train", *SYNTH, "--model", "tv:resnet19", "--epochs", "1")
    assert_one_line_error(result, "resnet18")
    assert_one_line_error(cli("train", *SYNTH, "--model", "simplenett"), "simplenet")
    assert_one_line_error(cli("train", *SYNTH, "--pretrained"), "tv:<name>")
    assert_one_line_error(cli("train", *SYNTH, "--unfreeze-after", "1"), "--freeze-backbone")
    assert_one_line_error(cli("train", *SYNTH, "--classes", "class-1,nope"), "nope")
    assert_one_line_error(cli("train", *SYNTH, "--classes", "class-1,1"), "twice")
    assert_one_line_error(cli("train", *SYNTH, "--classes", "2,2"), "two different")
    assert_one_line_error(cli("train", *SYNTH, "--engine", "scratch", "--freeze-backbone"), "--freeze-backbone")


def made_up_resnet18_file(tmp_path, monkeypatch):
    """A locally made 'pretrained' ResNet-18 file, placed where torchvision's weights API looks for it
    (TORCH_HOME points at a temporary folder: the real cache is never touched)."""
    import torchvision
    from deepdive.models.external import pretrained_cache_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    torch.manual_seed(123)
    state = torchvision.models.resnet18(num_classes=1000).state_dict()
    for k, v in state.items():
        if k.endswith("running_mean"):
            v.uniform_(-0.5, 0.5)  # non-default statistics: a drift of BatchNorm would show
    path = pretrained_cache_file("tv:resnet18")
    assert str(path).startswith(str(tmp_path))
    return path, state


def test_pretrained_offline_message_then_cache_then_weights_file_with_a_frozen_backbone(cli, tmp_path, monkeypatch,
                                                                                        caplog):
    path, state = made_up_resnet18_file(tmp_path, monkeypatch)
    base = ["train", "--config", synthetic_config(tmp_path, (3, 8, 8)), "--model", "tv:resnet18", "--small-input",
            "--epochs", "1", "-b", "8", "--freeze-backbone", "--optimizer", "adamw", "--decoupled-wd"]
    offline = cli(*base, "--pretrained", "--no-download", "--out", tmp_path / "none")
    assert_one_line_error(offline, str(path))
    assert "resnet18-f37072fd.pth" in offline.err and "--weights" in offline.err
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    cached = cli(*base, "--pretrained", "--no-download", "--out", tmp_path / "cached")
    assert cached.code == 0, cached.err
    assert "newly initialised: net.conv1, net.fc" in caplog.text
    info = json.loads((tmp_path / "cached" / "model.json").read_text())
    assert info["mean"] == [0.485, 0.456, 0.406] and info["preprocessing"]["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    trained = weights_of(tmp_path / "cached")
    backbone = [k for k in state if not k.startswith(("fc.", "conv1."))]
    for k in backbone:  # loaded, and frozen: weights, BatchNorm statistics, despite decoupled decay
        assert np.array_equal(trained[f"net.{k}"].reshape(state[k].shape), state[k].numpy()), k
    assert not np.array_equal(trained["net.conv1.weight"][:, :, :3, :3], state["conv1.weight"][:, :, :3, :3].numpy())
    head_before = torch.nn.Linear(512, 4).weight.detach()  # (the head is new: 4 classes, not 1000)
    assert trained["net.fc.weight"].shape == tuple(head_before.shape)
    from safetensors.torch import save_file
    save_file(state, str(tmp_path / "resnet18.safetensors"))
    from_file = cli(*base, "--weights", tmp_path / "resnet18.safetensors", "--out", tmp_path / "file")
    assert from_file.code == 0, from_file.err
    assert all(np.array_equal(v, weights_of(tmp_path / "file")[k]) for k, v in trained.items())  # the same run


def test_init_from_classes_unfreeze_after_and_head_lr(cli, tmp_path, caplog):
    synth = synthetic_config(tmp_path, (1, 8, 8), classes=4, train=64, test=32)
    first = tmp_path / "first"
    assert cli("train", "--config", synth, "--epochs", "1", "--out", first).code == 0
    second = tmp_path / "second"
    result = cli("train", "--config", synth, "--init-from", first, "--classes", "class-3,1", "--freeze-backbone",
                 "--unfreeze-after", "1", "--epochs", "2", "--keep", "2", "--head-lr", "0.05", "--lr", "0.01",
                 "--sched", "step", "--decay-epochs", "1", "--decay-rate", "0.5", "--optimizer", "sgd", "-b", "16",
                 "--out", second, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert (summary["train_examples"], summary["test_examples"]) == (32, 16)  # two of four balanced classes
    info = json.loads((second / "model.json").read_text())
    assert info["classes"] == ["class-3", "class-1"]
    assert "the head starts fresh" in caplog.text
    from safetensors.numpy import load_file
    start, one, two = weights_of(first), load_file(str(second / "checkpoints" / "epoch-001.safetensors")), \
        weights_of(second)
    backbone = [k for k in start if not k.startswith("fc3.")]
    assert backbone and all(np.array_equal(one[k], start[k]) for k in backbone)  # frozen for epoch 1
    assert all(not np.array_equal(two[k], one[k]) for k in backbone if k.endswith("weight"))  # trained in epoch 2
    assert one["fc3.weight"].shape == (2, 64) and not np.array_equal(one["fc3.weight"], two["fc3.weight"])
    groups = torch.load(second / "state.pt", weights_only=True)["optimizer"]["param_groups"]
    roles = sorted((g["role"], g["lr"]) for g in groups)  # epoch 2 of a step schedule halving every epoch:
    assert [r for r, _ in roles] == ["backbone", "backbone", "head", "head"]  # both follow it from their base
    assert [lr for _, lr in roles] == pytest.approx([0.005, 0.005, 0.025, 0.025], rel=1e-12)
    other = cli("train", "--config", synth, "--model", "perceptron", "--init-from", first, "--out", tmp_path / "x")
    assert_one_line_error(other, "simplenet")


@pytest.mark.parametrize("optimizer, lr", [("adadelta", 1.0), ("sgd", 0.01), ("momentum", 0.01), ("adam", 1e-3),
                                           ("adagrad", 0.01), ("rmsprop", 0.01), ("adamw", 1e-3)])
def test_each_optimizer_has_its_own_default_lr_unless_lr_or_a_recipe_says(cli, optimizer, lr):
    assert cli("train", "--optimizer", optimizer, "--print-config").json()["lr"] == lr
    assert cli("train", "--optimizer", optimizer, "--lr", "0.3", "--print-config").json()["lr"] == 0.3
    listed = cli("list").out
    assert f"(default lr {lr:g})" in next(line for line in listed.splitlines() if line.strip().startswith(optimizer))


def test_recipe_lr_wins_over_the_optimizer_default(cli):
    from deepdive.config.recipes import RECIPES
    values = RECIPES["article"]["values"]
    assert cli("train", "--recipe", "article", "--print-config").json()["lr"] == values["lr"]


def test_timm_models_when_installed(cli, tmp_path):
    pytest.importorskip("timm", reason="pip install 'deepdive[timm]'")
    run = tmp_path / "timm"
    result = cli("train", "--config", synthetic_config(tmp_path, (3, 16, 16)), "--model", "timm:resnet10t",
                 "--small-input", "--epochs", "1", "-b", "8", "--out", run)
    assert result.code == 0, result.err
    assert cli("evaluate", run, "--json").json()["examples"] == 8
    offline = cli("train", "--config", synthetic_config(tmp_path, (3, 16, 16)), "--model", "timm:resnet10t",
                  "--pretrained", "--no-download", "--out", tmp_path / "offline")
    assert_one_line_error(offline, "--no-download", "huggingface.co/timm/resnet10t")


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned-by-the-cache",))


def test_a_pickle_in_the_weights_cache_never_runs_and_garbage_is_one_line(cli, tmp_path, monkeypatch):
    import pickle
    from deepdive.models.external import pretrained_cache_file
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    cached = pretrained_cache_file("tv:resnet18")
    cached.parent.mkdir(parents=True)
    base = ["train", "--config", synthetic_config(tmp_path, (3, 8, 8)), "--model", "tv:resnet18", "--small-input",
            "--pretrained", "--no-download", "--epochs", "1"]
    for content in (pickle.dumps({"conv1.weight": _Evil()}), b"not a pickle", b""):
        cached.write_bytes(content)
        assert_one_line_error(cli(*base, "--out", tmp_path / "run"), str(cached))
        assert not (tmp_path / "pwned-by-the-cache").exists() and not (tmp_path / "run").exists()


def test_architectures_that_cannot_take_the_images_are_refused_before_the_run(cli, tmp_path):
    data = synthetic_config(tmp_path, (3, 16, 16))
    for model in ("tv:vit_b_16", "tv:inception_v3"):
        result = cli("train", "--config", data, "--model", model, "--small-input", "--out", tmp_path / "x")
        assert_one_line_error(result, "drop --small-input")
    assert not (tmp_path / "x").exists()
    from deepdive.models.registry import build_model
    vit = build_model("tv:vit_b_16", torch.nn, torch.nn.functional, (3, 256, 256), 4)
    assert vit.resize_to == (224, 224)  # a fixed-size architecture gets its size, from larger images too
    tiny = synthetic_config(tmp_path, (1, 4, 4))
    assert_one_line_error(cli("train", "--config", tiny, "--model", "tv:alexnet", "--small-input",
                              "--out", tmp_path / "y"), "at least 63x63")
    from deepdive.training.run_data import prepare_data
    from deepdive.config.train_config import TrainConfig
    from deepdive.training.engines import make_engine
    from deepdive.errors import UserError
    from deepdive.training.setup import check_forward

    class Picky(torch.nn.Module):  # stands for any architecture whose forward refuses these images
        def forward(self, x):
            raise RuntimeError("Kernel size can't be greater than actual input size")
    bundle = prepare_data(TrainConfig(dataset="synthetic", synthetic={"shape": [1, 4, 4], "classes": 2, "train": 4,
                                                                      "test": 2}))
    with pytest.raises(UserError, match="cannot take the data's 1x4x4 images .Kernel size"):
        check_forward("picky", make_engine("torch", "cpu", lambda x: x.float()), Picky(), bundle)
    assert_one_line_error(cli("train", *SYNTH, "--model", "perceptron", "--freeze-backbone"), "no backbone")


def test_resume_needs_neither_the_init_run_nor_the_weights_file(cli, tmp_path):
    synth = synthetic_config(tmp_path, (1, 8, 8), classes=4, train=64, test=32)
    source = tmp_path / "source"
    assert cli("train", "--config", synth, "--epochs", "1", "--out", source).code == 0
    run = tmp_path / "tuned"
    assert cli("train", "--config", synth, "--init-from", source, "--epochs", "1", "--out", run).code == 0
    assert json.loads((run / "config.json").read_text())["init_from"] == str(source.resolve())
    import shutil
    shutil.rmtree(source)
    resumed = cli("train", "--resume", run, "--epochs", "2", "--force")
    assert resumed.code == 0, resumed.err
    assert_one_line_error(cli("train", "--config", synth, "--model", "tv:resnet18", "--weights",
                              run / "model.safetensors", "--out", tmp_path / "z"), "--init-from")


def test_classes_missing_from_a_split_are_one_line():
    from deepdive.data.classes import select_classes
    from deepdive.data.pipeline import DataBundle, Split
    from deepdive.errors import UserError
    images = torch.zeros(6, 1, 2, 2, dtype=torch.uint8)
    bundle = DataBundle("x", Split(images, torch.tensor([0, 1, 2, 0, 1, 2])), Split(images[:2], torch.tensor([0, 1])),
                        ["a", "b", "c"], (0.5,), (0.2,))
    with pytest.raises(UserError, match="the test split has no image of c"):
        select_classes(bundle, ["a", "c"])


def test_init_from_a_run_built_otherwise_names_the_flags_to_give(cli, tmp_path):
    synth = synthetic_config(tmp_path, (3, 16, 16), classes=4, train=16, test=8)
    source = tmp_path / "source"
    assert cli("train", "--config", synth, "--model", "fastnet", "--widths", "8,8", "--epochs", "1",
               "--out", source).code == 0
    other = cli("train", "--config", synth, "--model", "fastnet", "--widths", "8,16", "--init-from", source,
                "--out", tmp_path / "x")
    assert_one_line_error(other, "widths=[8, 8]", "give the flags it was trained with")
    assert cli("train", "--config", synth, "--model", "fastnet", "--widths", "8,8", "--init-from", source,
               "--epochs", "1", "--out", tmp_path / "same").code == 0


def test_init_from_says_each_refusal_whole_and_what_it_loaded(cli, tmp_path, caplog):
    """The messages of ``--init-from``, exactly: another model, other constructor options (each differing one,
    both ways), other channels; and, accepted, the log line of what was loaded and why the head was kept."""
    grey = synthetic_config(tmp_path, (1, 8, 8), classes=4, train=16, test=8)
    source = tmp_path / "source"
    assert cli("train", "--config", grey, "--epochs", "1", "--out", source).code == 0
    assert_one_line_error(cli("train", "--config", grey, "--model", "perceptron", "--init-from", source),
                          f"--init-from {source} holds a simplenet model, this run trains perceptron: give a run of "
                          "--model perceptron")
    assert_one_line_error(cli("train", "--config", grey, "--article-exact", "--init-from", source),
                          f"--init-from {source} was built with article_exact=False, this run with "
                          "article_exact=True: give the flags it was trained with (e.g. --pretrained for a "
                          "pretrained run's resize and normalization, --small-input, --widths)")
    rgb = synthetic_config(tmp_path, (3, 8, 8), classes=4, train=16, test=8)
    assert_one_line_error(cli("train", "--config", rgb, "--init-from", source),
                          f"--init-from {source} was trained on 1-channel images, this data has 3: give a run "
                          "trained on images of the same channels")
    with caplog.at_level("INFO", logger="deepdive"):
        assert cli("train", "--config", grey, "--init-from", source, "--epochs", "1", "--out", tmp_path / "b").code == 0
    assert (f"loaded 6 of the model's 6 tensors from source/model.safetensors (the same classes: the head is kept)"
            in caplog.text)
