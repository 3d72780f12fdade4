import json
import signal
import time

import pytest

from conftest import SYNTH, FASHION_DIR, assert_one_line_error, run_subprocess


def train(cli, tmp_path, *extra, name="run"):
    result = cli("train", *SYNTH, "--out", tmp_path / name, "--json", *extra)
    assert result.code == 0, result.err
    return result.json()


@pytest.mark.parametrize("model", ["perceptron", "simplenet", "article-cnn"])
def test_training_lowers_loss_and_learns(cli, tmp_path, model):
    extra = ["--epochs", "3"] if model != "article-cnn" else [
        "--synthetic-shape", "3,12,12", "--epochs", "3", "--limit-train", "600", "--limit-test", "200", "--lr", "3e-3"]
    summary = train(cli, tmp_path, "--model", model, *extra)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert summary["status"] == "completed" and summary["epochs"] == len(metrics)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert summary["test_accuracy"] >= (0.95 if model != "article-cnn" else 0.5)
    for record in metrics:
        assert set(record) >= {"epoch", "train_loss", "test_loss", "test_accuracy", "seconds", "images_per_second"}
        assert 0.0 <= record["test_accuracy"] <= 1.0


def test_run_folder_contents(cli, tmp_path):
    summary = train(cli, tmp_path, "--epochs", "1")
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {"config.json", "model.json", "metrics.jsonl", "summary.json",
                                               "model.safetensors", "best.safetensors", "state.pt", "metrics.csv"}
    for key in ("status", "test_accuracy", "test_loss", "epochs", "train_seconds", "images_per_second", "device",
                "torch_version", "deepdive_version"):
        assert key in summary
    info = json.loads((run / "model.json").read_text())
    assert info["input_shape"] == [1, 8, 8] and len(info["classes"]) == 4 and len(info["mean"]) == 1
    from safetensors.numpy import load_file
    assert "fc1.weight" in load_file(str(run / "model.safetensors"))


def test_same_seed_same_metrics_other_seed_differs(cli, tmp_path):
    args = ("--model", "simplenet", "--epochs", "2", "--optimizer", "momentum", "--lr", "0.01")
    a = train(cli, tmp_path, *args, name="a")
    b = train(cli, tmp_path, *args, name="b")
    c = train(cli, tmp_path, *args, "--seed", "1", name="c")
    ma, mb, mc = ((tmp_path / n / "metrics.jsonl").read_text().splitlines() for n in "abc")
    strip = lambda lines: [{k: v for k, v in json.loads(l).items() if k not in ("seconds", "images_per_second")}
                           for l in lines]
    assert strip(ma) == strip(mb)
    assert strip(ma) != strip(mc)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw"])
def test_every_optimizer_trains(cli, tmp_path, optimizer):
    lr = {"adadelta": "1.0", "sgd": "0.05", "momentum": "0.01", "nesterov": "0.01"}.get(optimizer, "1e-2")
    summary = train(cli, tmp_path, "--model", "perceptron", "--optimizer", optimizer, "--lr", lr, "--epochs", "2")
    assert summary["test_accuracy"] > 0.9


def test_config_rerun_reproduces(cli, tmp_path):
    first = train(cli, tmp_path, "--epochs", "2", "--model", "perceptron", name="first")
    result = cli("train", "--config", tmp_path / "first" / "config.json", "--out", tmp_path / "again", "--json")
    assert result.code == 0, result.err
    assert result.json()["test_accuracy"] == first["test_accuracy"]
    assert result.json()["test_loss"] == first["test_loss"]
    over = cli("train", "--config", tmp_path / "first" / "config.json", "--epochs", "1", "--out", tmp_path / "x",
               "--json")
    assert over.json()["epochs"] == 1


def test_evaluate_reproduces_recorded_accuracy(cli, tmp_path):
    summary = train(cli, tmp_path, "--model", "simplenet", "--epochs", "1", "--limit-test", "300")
    result = cli("evaluate", tmp_path / "run", "--json")
    assert result.code == 0, result.err
    evaluated = result.json()
    assert evaluated["examples"] == 300
    assert evaluated["test_accuracy"] == summary["test_accuracy"]
    assert evaluated["test_loss"] == pytest.approx(summary["test_loss"], rel=1e-6)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_one_epoch_accuracy(cli, tmp_path):
    """The acceptance run: simplenet on Fashion-MNIST, defaults, one epoch, >= 0.80."""
    result = cli("train", "--model", "simplenet", "--dataset", "fashion-mnist", "--data-dir", tmp_path,
                 "--epochs", "1", "--json", "--out", tmp_path / "fm")
    assert result.code == 0, result.err
    assert result.json()["test_accuracy"] >= 0.80
    again = cli("evaluate", tmp_path / "fm", "--json")
    assert again.json()["test_accuracy"] == result.json()["test_accuracy"]


def test_too_small_images_for_article_cnn(cli, tmp_path):
    result = cli("train", *SYNTH, "--model", "article-cnn", "--out", tmp_path / "run")
    assert_one_line_error(result, "at least 9x9")
    assert not (tmp_path / "run").exists()


def test_divergence_exits_1_and_marks_failed(cli, tmp_path):
    result = cli("train", *SYNTH, "--optimizer", "sgd", "--lr", "1e30", "--out", tmp_path / "run")
    assert result.code == 1
    assert "diverged" in result.err and "epoch 1" in result.err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


def test_existing_out_refused_unless_overwrite(cli, tmp_path):
    train(cli, tmp_path, "--epochs", "1")
    result = cli("train", *SYNTH, "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(result, "already exists", "--overwrite")
    assert cli("train", *SYNTH, "--epochs", "1", "--out", tmp_path / "run", "--overwrite").code == 0


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_marks_run_and_exits(tmp_path, sig, code):
    from test_resume import stop_at
    run = tmp_path / "run"
    proc, err = stop_at(["train", *SYNTH, "--model", "simplenet", "--epochs", "100000", "--out", run],
                        "step:40", tmp_path, sig)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


def test_the_pause_hook_is_the_train_commands_not_the_loops(tmp_path, monkeypatch):
    """The environment's pause hook (a debugging facility) reaches a run only through the command that passes
    it: ``run_training`` from Python ignores DEEPDIVE_PAUSE_AT and never pauses."""
    from deepdive.commands.train_flags import parse_train_flags
    from deepdive.config.resolve import resolve_config
    from deepdive.training.setup import run_training

    import deepdive.training.hooks as hooks

    def never(stop):
        raise AssertionError("the loop built the environment's pause hook itself")

    marker = tmp_path / "paused"
    monkeypatch.setenv("DEEPDIVE_PAUSE_AT", "step:1")
    monkeypatch.setenv("DEEPDIVE_PAUSE_FILE", str(marker))
    monkeypatch.setattr(hooks, "pause_hook_from_env", never)
    summary = run_training(resolve_config(parse_train_flags([*SYNTH, "--epochs", "1", "--out", str(tmp_path / "r")])))
    assert summary["status"] == "completed" and not marker.exists()
