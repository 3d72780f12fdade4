"""The one configuration resolution, --print-config, the ecosystem's flag names, and the CLI's manners."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SYNTH, assert_one_line_error, run_subprocess


def printed(cli, *argv):
    result = cli("train", *argv, "--print-config")
    assert result.code == 0, result.err
    return result.json()


def test_resolution_order_defaults_recipe_file_flags(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("deepdive.config.machine.cpu_has_native_bf16", lambda: False)
    assert printed(cli, *SYNTH)["lr"] == 1e-3  # the default
    assert printed(cli, *SYNTH, "--recipe", "fast", "--device", "cpu")["lr"] == 0.4  # the recipe's, on a CPU
    assert printed(cli, *SYNTH, "--recipe", "fast", "--device", "cuda")["lr"] == 0.4
    assert printed(cli, *SYNTH, "--recipe", "fast", "--device", "cuda")["batch_size"] == 1024
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"recipe": "fast", "lr": 0.3, "device": "cpu", "out": str(tmp_path / "old")}))
    from_file = printed(cli, "--config", file, *SYNTH)
    assert from_file["lr"] == 0.3 and from_file["model"] == "fastnet"  # the file over the recipe
    assert from_file["out"] != str(tmp_path / "old")  # a re-run gets a fresh folder
    assert printed(cli, "--config", file, *SYNTH, "--lr", "0.2")["lr"] == 0.2  # flags over the file
    assert printed(cli, "--config", file, *SYNTH, "--recipe", "sprint")["widths"] == [32, 64, 128]


def test_print_config_is_what_config_json_holds(cli, tmp_path):
    out = tmp_path / "run"
    shown = printed(cli, *SYNTH, "--epochs", "1", "--opt", "sgd", "--lr", "0.1", "--out", out)
    assert not out.exists()  # printing trains nothing
    assert cli("train", *SYNTH, "--epochs", "1", "--opt", "sgd", "--lr", "0.1", "--out", out).code == 0
    assert json.loads((out / "config.json").read_text()) == shown
    resumed = printed(cli, "--resume", out)
    assert resumed == shown


def test_article_recipe_is_the_articles_experiment(cli):
    cfg = printed(cli, "--recipe", "article")
    assert {k: cfg[k] for k in ("model", "dataset", "optimizer", "lr", "batch_size", "epochs", "normalization",
                                "eval_train_mode")} == {
        "model": "article-cnn", "dataset": "cifar10", "optimizer": "adam", "lr": 1e-3, "batch_size": 16,
        "epochs": 10, "normalization": "mnist", "eval_train_mode": True}


def test_every_recipe_value_has_its_reason():
    from deepdive.config.recipes import RECIPES
    for name, recipe in RECIPES.items():
        keys = set(recipe["values"]) | set(recipe.get("cpu", {})) | set(recipe.get("cuda", {}))
        assert keys <= set(recipe["reasons"]), (name, keys - set(recipe["reasons"]))
        assert all(len(reason) > 10 for reason in recipe["reasons"].values())


def test_ecosystem_flag_names(cli, tmp_path):
    run = tmp_path / "DIR"
    result = cli("train", *SYNTH, "--epochs", "2", "--opt", "nesterov", "--sched", "cosine", "--smoothing", "0.1",
                 "--clip-grad", "1", "--output", run, "--model-ema-decay", "0.9", "--checkpoint-hist", "1",
                 "--json")
    assert result.code == 0, result.err
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["optimizer"], cfg["schedule"], cfg["label_smoothing"], cfg["grad_clip"], cfg["ema"], cfg["keep"],
            cfg["out"]) == ("nesterov", "cosine", 0.1, 1.0, 0.9, 1, str(run))
    assert result.json()["run"] == str(run) and (run / "checkpoints" / "epoch-002.safetensors").exists()
    step = printed(cli, *SYNTH, "--sched", "step", "--decay-epochs", "3", "--decay-rate", "0.5", "--warmup-epochs",
                   "1", "--channels-last")
    assert (step["schedule"], step["decay_epochs"], step["decay_rate"], step["warmup_epochs"],
            step["channels_last"]) == ("step", 3.0, 0.5, 1.0, True)


@pytest.mark.parametrize("argv, fragment", [
    (["--warmup", "0.1", "--warmup-epochs", "1"], "both given"),
    (["--warmup-epochs", "10"], "--warmup-epochs"),
    (["--warmup-epochs", "1", "--time-budget", "5"], "--time-budget"),
    (["--sched", "step"], "--decay-epochs"),
    (["--decay-epochs", "2"], "applies to --sched step"),
    (["--sched", "step", "--decay-epochs", "2", "--time-budget", "5"], "--time-budget"),
    (["--sched", "step", "--decay-epochs", "2", "--decay-rate", "2"], "--decay-rate"),
])
def test_schedule_flags_refused_with_one_line(cli, tmp_path, argv, fragment):
    assert_one_line_error(cli("train", *SYNTH, "--out", tmp_path / "r", *argv), fragment)
    assert not (tmp_path / "r").exists()


def test_a_recipes_warmup_gives_way_to_warmup_epochs(cli):
    cfg = printed(cli, *SYNTH, "--recipe", "fast", "--warmup-epochs", "1", "--widths", "8")
    assert cfg["warmup_epochs"] == 1.0 and cfg["warmup"] == 0.0


@pytest.mark.parametrize("argv, suggestion", [
    (["train", "--model", "simplenett"], "did you mean simplenet?"),
    (["train", "--dataset", "cifar"], "did you mean cifar10?"),
    (["train", "--opt", "adm"], "did you mean adam?"),
    (["train", "--recipe", "fsat"], "did you mean fast?"),
    (["trian"], "did you mean train?"),
    (["train", "--lrr", "0.1"], "did you mean --lr?"),
    (["train", "--smothing", "0.1"], "did you mean --smoothing?"),
])
def test_did_you_mean(cli, argv, suggestion):
    assert_one_line_error(cli(*argv), suggestion)


def test_did_you_mean_in_config_files(cli, tmp_path):
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"optimiser": "adam"}))
    assert_one_line_error(cli("train", "--config", file), "did you mean optimizer?")
    file.write_text(json.dumps({"model": "simplenett"}))
    assert_one_line_error(cli("train", "--config", file), "did you mean simplenet?")


def test_no_abbreviations(cli):
    """--opt is a declared alias; prefixes of other flags are not silently accepted."""
    assert_one_line_error(cli("train", "--epo", "1"), "unrecognized arguments")


def test_version_and_quiet_anywhere_and_closed_pipe(tmp_path):
    from deepdive.version import __version__
    version = run_subprocess("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"deepdive {__version__}"
    quiet = run_subprocess("train", *SYNTH, "--epochs", "1", "--out", tmp_path / "q", "-q")
    assert quiet.returncode == 0 and "epoch 1/1" not in quiet.stderr
    piped = subprocess.run(f"{sys.executable} -m deepdive list | head -1", shell=True, capture_output=True,
                           text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout == "models:\n"
    status = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m deepdive list | head -1"],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr  # deepdive itself exits 0 on the closed pipe


# -- the shape of the code -------------------------------------------------------------------------------
def test_no_function_in_the_training_loop_over_50_lines():
    for path in (ROOT / "src" / "deepdive" / "train").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 50, f"{path.name}:{node.name} is {length} lines"


def test_no_model_name_tested_outside_models():
    pattern = re.compile(r"\b(cfg|config|self\.cfg)\.model\s*(==|!=|in\b)")
    src = ROOT / "src" / "deepdive"
    for path in src.rglob("*.py"):
        if path.parent.name == "models":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{path.relative_to(src)}:{number}: {line.strip()}"


def test_model_json_rebuilds_the_model_alone(cli, tmp_path):
    """A fastnet run's model.json holds every constructor argument: no config.json needed to rebuild it."""
    import torch
    import torch.nn.functional as F

    from deepdive.models.registry import build_model
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--model", "fastnet", "--synthetic-shape", "3,12,12", "--widths", "8,16",
               "--no-whiten", "--epochs", "1", "--out", run).code == 0
    info = json.loads((run / "model.json").read_text())
    assert info["options"] == {"widths": [8, 16], "whiten": False, "identity_init": True} and info["channels_last"] is True
    model = build_model(info["model"], torch.nn, F, info["input_shape"], len(info["classes"]), **info["options"])
    from safetensors.torch import load_file
    model.load_state_dict(load_file(str(run / "model.safetensors")))  # the shapes fit


def test_weight_decay_spares_biases_and_norms_unless_asked():
    import torch.nn.functional as F
    from torch import nn

    from deepdive.models.registry import build_model
    from deepdive.training.optim import parameter_groups
    model = build_model("fastnet", nn, F, (3, 12, 12), 4, widths=(8,))
    groups = parameter_groups(model, 0.1)
    decayed = {id(p) for g in groups if g["weight_decay"] for p in g["params"]}
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert (id(p) in decayed) == (p.ndim > 1), name  # conv/linear weights only; BN and biases spared
    everything = parameter_groups(model, 0.1, decay_norm_and_bias=True)
    assert len(everything) == 1 and everything[0]["weight_decay"] == 0.1
    decoupled = parameter_groups(model, 0.1, decoupled=True)
    assert all(g["weight_decay"] == 0.0 for g in decoupled) and decoupled[0]["decoupled_wd"] == 0.1


# -- CPU threads ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("busy, model, expected", [
    (0, "fastnet", 2), (1, "fastnet", 1), (3, "article-cnn", 1), (0, "simplenet", 1), (0, None, 2)])
def test_thread_rule(monkeypatch, busy, model, expected):
    import deepdive.training.threads as threads
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: busy)
    assert threads.default_threads(model) == expected


def test_busy_cores_from_two_readings_of_proc_stat(tmp_path, monkeypatch):
    import deepdive.training.threads as threads
    monkeypatch.undo()  # the real measurement, not conftest's idle machine
    stat = tmp_path / "stat"
    readings = iter(["cpu  100 0 100 800 0 0 0 0 0 0\n", "cpu  175 0 125 850 50 0 0 0 0 0\n"])
    monkeypatch.setattr(threads, "cpu_times", lambda path: threads.parse_cpu_line(next(readings)))
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    assert threads.busy_cores(window=0, stat=str(stat)) == 1  # 100 busy ticks of 200: half of 2 cores
    stat.write_text("cpu  10 0 10 80 0 0 0 0 0 0\n")
    monkeypatch.undo()
    assert threads.cpu_times(str(stat)) == (20.0, 100.0)
    assert threads.cpu_times(str(tmp_path / "missing")) is None


def test_busy_machine_warning_once_after_validation(cli, tmp_path, monkeypatch, caplog):
    import deepdive.training.threads as threads
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 2)
    with caplog.at_level("WARNING", logger="deepdive"):
        assert cli("train", *SYNTH, "--lr", "-1", "--out", tmp_path / "bad").code == 2
        assert "machine is busy" not in caplog.text  # a refused command says only what is wrong
        assert cli("train", *SYNTH, "--epochs", "2", "--out", tmp_path / "ok").code == 0
    assert caplog.text.count("machine is busy") == 1
    assert json.loads((tmp_path / "ok" / "summary.json").read_text())["threads"] == 1
