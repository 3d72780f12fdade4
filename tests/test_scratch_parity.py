"""The article's models on both engines, stepped together: the numbers must agree."""
import numpy as np
import pytest

from conftest import SYNTH, FASHION_DIR
from deepdive.teach.parity import format_report, run_parity


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
@pytest.mark.parametrize("model, shape", [("simplenet", (1, 28, 28)), ("article-cnn", (3, 12, 12))])
def test_article_models_agree_over_20_steps_float64(model, shape, optimizer):
    report = run_parity(model, steps=20, optimizer=optimizer, dtype="float64", input_shape=shape, batch_size=8)
    assert len(report) == 20
    worst = max(d.max_rel for d in report)
    assert worst <= 1e-6, format_report(report, model, optimizer, "float64")[0]
    # the parameters really moved: the check compares training, not a frozen model
    assert report[-1].params and all(d.loss[0] < 1e-9 for d in report)


def test_independent_shapes_weights_and_classes():
    report = run_parity("article-cnn", steps=20, optimizer="nesterov", dtype="float64", input_shape=(2, 11, 13),
                        num_classes=5, batch_size=3, seed=7, lr=0.05)
    assert max(d.max_rel for d in report) <= 1e-6


def test_float32_report_passes_against_float64_reference():
    report = run_parity("simplenet", steps=20, optimizer="adam", dtype="float32")
    lines, ok = format_report(report, "simplenet", "adam", "float32")
    assert ok, "\n".join(lines)
    assert report[0].reference  # the float64 reference was stepped


def test_dropout_masks_are_shared():
    """Net has dropout; without shared masks the losses would differ after the first forward."""
    report = run_parity("article-cnn", steps=3, optimizer="sgd", input_shape=(3, 10, 10), batch_size=4)
    assert all(d.loss[1] < 1e-12 for d in report)


def test_parity_cli(cli):
    result = cli("parity", "--model", "simplenet", "--steps", "20", "--optimizer", "momentum")
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert "tolerance" in lines[0].lower() and lines[-1].startswith("PASS")
    assert sum(1 for line in lines if line.strip()[:2].strip().isdigit()) == 20
    as_json = cli("parity", "--model", "perceptron", "--steps", "3", "--json").json()
    assert as_json["ok"] and len(as_json["steps"]) == 3
    assert cli("parity", "--steps", "0").code == 2


def test_scratch_engine_trains_through_the_same_loop(cli, tmp_path):
    result = cli("train", *SYNTH, "--engine", "scratch", "--model", "simplenet", "--epochs", "3", "--json",
                 "--out", tmp_path / "s")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["engine"] == "scratch" and summary["test_accuracy"] >= 0.95
    metrics = (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 3
    again = cli("evaluate", tmp_path / "s", "--json").json()
    assert again["test_accuracy"] == summary["test_accuracy"]


@pytest.mark.parametrize("model", ["perceptron", "article-cnn"])
def test_scratch_engine_other_models(cli, tmp_path, model):
    extra = ["--synthetic-shape", "3,12,12", "--limit-train", "400", "--limit-test", "100", "--lr", "3e-3"] \
        if model == "article-cnn" else ["--lr", "1e-2"]
    result = cli("train", *SYNTH, "--engine", "scratch", "--model", model, "--epochs", "2", "--json",
                 "--out", tmp_path / "s", *extra)
    assert result.code == 0, result.err
    assert result.json()["test_accuracy"] >= (0.9 if model == "perceptron" else 0.4)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_scratch_simplenet_fashion_mnist_one_epoch(cli, tmp_path):
    result = cli("train", "--engine", "scratch", "--model", "simplenet", "--dataset", "fashion-mnist",
                 "--data-dir", tmp_path, "--epochs", "1", "--json", "--out", tmp_path / "fm")
    assert result.code == 0, result.err
    assert result.json()["test_accuracy"] >= 0.80


def test_scratch_refuses_cuda(cli, tmp_path):
    result = cli("train", *SYNTH, "--engine", "scratch", "--device", "cuda", "--out", tmp_path / "x")
    assert result.code == 2 and "CPU only" in result.err
