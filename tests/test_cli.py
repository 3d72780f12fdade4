import json

import pytest

from conftest import SYNTH, assert_one_line_error, run_subprocess


@pytest.mark.parametrize("args, fragment", [
    (["--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["--model", "tv:resnet9000"], "torchvision has no classification model"),
    (["--dataset", "imagenet"], "invalid choice"),
    (["--optimizer", "lbfgs"], "invalid choice"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["-b", "0"], "--batch-size"),
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "two"], "invalid int"),
    (["--limit-train", "-5"], "--limit-train"),
    (["--momentum", "1.5"], "--momentum"),
    (["--optimizer", "nesterov", "--momentum", "0"], "nesterov"),
    (["--model", "perceptron", "--article-exact"], "--article-exact"),
    (["--synthetic-shape", "3,x,4"], "--synthetic-shape"),
])
def test_bad_flags_exit_2_with_one_line(cli, tmp_path, args, fragment):
    result = cli("train", *SYNTH, "--out", tmp_path / "run", *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_missing_data_folders(cli, tmp_path):
    assert_one_line_error(cli("train", "--dataset", "mnist", "--data-dir", tmp_path), "mnist idx files not found")
    assert_one_line_error(cli("train", "--dataset", "imagefolder", "--data-dir", tmp_path / "x"), "does not exist")


def test_cuda_without_gpu(cli, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert_one_line_error(cli("train", *SYNTH, "--device", "cuda", "--out", tmp_path / "r"), "no CUDA GPU")
    assert not (tmp_path / "r").exists()


def test_bad_run_folders(cli, tmp_path):
    assert_one_line_error(cli("evaluate", tmp_path / "none"), "does not exist")
    assert_one_line_error(cli("evaluate", tmp_path), "not a run folder")
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "1", "--out", run).code == 0
    weights = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").unlink()
    assert_one_line_error(cli("evaluate", run), "has no model.safetensors yet")
    (run / "model.safetensors").write_bytes(b"\x00" * 7)
    assert_one_line_error(cli("evaluate", run), "not a readable safetensors file")
    (run / "model.safetensors").write_bytes(weights)
    (run / "config.json").write_text("{not json")
    assert_one_line_error(cli("evaluate", run), "not valid JSON")


def test_bad_config_file(cli, tmp_path):
    assert_one_line_error(cli("train", "--config", tmp_path / "nope.json"), "does not exist")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "simplenet", "colour": "red"}))
    assert_one_line_error(cli("train", "--config", bad), "unknown config key", "colour")


def test_list(cli):
    result = cli("list", "--json")
    tables = result.json()
    assert set(tables["models"]) == {"perceptron", "simplenet", "article-cnn", "fastnet", "tv:<name>", "timm:<name>"}
    external = cli("list", "--external").out
    assert "  tv:resnet18" in external and "  tv:mobilenet_v3_small" in external and "  tv:inception_v3" in external
    assert set(tables["datasets"]) == {"cifar10", "fashion-mnist", "mnist", "imagefolder", "synthetic"}
    assert set(tables["optimizers"]) == {"sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam",
                                         "adamw"}


def test_console_entry_points_and_json_stdout(tmp_path):
    """A real process: ``--json`` leaves exactly one JSON object on stdout; errors are one line, exit 2."""
    done = run_subprocess("train", *SYNTH, "--epochs", "1", "--out", tmp_path / "run", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    assert "epoch 1/1" in done.stderr
    bad = run_subprocess("train", *SYNTH, "--lr", "-3")
    assert_one_line_error(bad, "--lr")
    usage = run_subprocess("evaluate")
    assert_one_line_error(usage, "RUN_DIR")


def test_help_needs_no_torch():
    """`deepdive --help` must answer at once: building the parser imports neither torch nor numpy."""
    import subprocess
    import sys
    code = ("import sys; from deepdive.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
