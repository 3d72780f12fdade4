"""Checkpoints, exact resume after SIGKILL or Ctrl-C, and what resume refuses."""
import json
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest

from cifar_files import Payload
from conftest import SYNTH, assert_one_line_error

# ~0.2 s per epoch in a child process: long enough to kill mid-epoch, short enough for CI
SLOW_SYNTH = {"shape": [1, 16, 16], "classes": 4, "train": 12000, "test": 200}


def write_config(tmp_path, engine="torch", epochs=4):
    cfg = {"model": "simplenet", "dataset": "synthetic", "synthetic": SLOW_SYNTH, "epochs": epochs,
           "batch_size": 32, "optimizer": "momentum", "lr": 0.01, "engine": engine, "seed": 3}
    path = tmp_path / f"cfg-{engine}.json"
    path.write_text(json.dumps(cfg))
    return path


def spawn(*args):
    return subprocess.Popen([sys.executable, "-m", "deepdive", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path, timeout=90):
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def finish(*args):
    done = subprocess.run([sys.executable, "-m", "deepdive", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def weights(run):
    return (run / "model.safetensors").read_bytes()


def metrics_without_timing(run):
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "images_per_second")}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("engine", ["torch", "scratch"])
def test_sigkill_at_random_instants_then_resume_is_bit_identical(tmp_path, engine):
    cfg = write_config(tmp_path, engine)
    reference = tmp_path / "reference"
    finish("train", "--config", cfg, "--out", reference)
    rng = random.Random(engine)
    for attempt in range(2):
        run = tmp_path / f"killed-{attempt}"
        proc = spawn("train", "--config", cfg, "--out", run)
        wait_for(run / "state.pt")  # at least one checkpoint exists
        time.sleep(rng.uniform(0.0, 0.4))  # then anywhere in the following epochs
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = json.loads((run / "summary.json").read_text())
        assert killed["status"] == "running" and killed["epochs"] < 4  # the kill landed mid-run
        finish("train", "--resume", run)
        assert weights(run) == weights(reference)
        assert metrics_without_timing(run) == metrics_without_timing(reference)
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_kill_before_the_first_checkpoint_restarts_from_scratch(tmp_path):
    cfg = write_config(tmp_path, epochs=2)
    reference = tmp_path / "reference"
    finish("train", "--config", cfg, "--out", reference)
    run = tmp_path / "early"
    proc = spawn("train", "--config", cfg, "--out", run)
    wait_for(run / "summary.json")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (run / "state.pt").exists():
        (run / "state.pt").unlink()  # the kill came late: make this the no-checkpoint case regardless
    done = finish("train", "--resume", run)
    assert "no checkpoint yet" in done.stderr
    assert weights(run) == weights(reference)


def test_sigint_mid_epoch_checkpoints_and_resumes_exactly(tmp_path):
    cfg = write_config(tmp_path, epochs=3)
    reference = tmp_path / "reference"
    finish("train", "--config", cfg, "--out", reference)
    run = tmp_path / "stopped"
    proc = spawn("train", "--config", cfg, "--out", run)
    wait_for(run / "state.pt")
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "deepdive train --resume" in err and "Traceback" not in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    finish("train", "--resume", run)
    assert weights(run) == weights(reference)


def test_resume_refuses_changes_unless_forced(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "2", "--out", run).code == 0
    result = cli("train", "--resume", run, "--lr", "0.5", "--epochs", "4")
    assert result.code == 2 and "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if "error" in line]
    assert len(lines) == 2 and "--lr" in lines[0] and "--epochs" in lines[1] and "--force" in lines[0]
    assert cli("train", "--resume", run, "--data-dir", tmp_path).code == 0  # where data lives: not a change
    forced = cli("train", "--resume", run, "--epochs", "4", "--force", "--json")
    assert forced.code == 0, forced.err
    summary = forced.json()
    assert summary["epochs"] == 4 and summary["status"] == "completed"
    assert any("--epochs" in line for line in summary["resume_forced"])
    assert json.loads((run / "config.json").read_text())["epochs"] == 4
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4


def test_resuming_a_completed_run_says_so(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "1", "--out", run).code == 0
    before = weights(run)
    result = cli("train", "--resume", run)
    assert result.code == 0 and "already completed" in result.out
    assert weights(run) == before


def test_resume_errors(cli, tmp_path):
    assert_one_line_error(cli("train", "--resume", tmp_path / "nothing"), "does not exist")
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "1", "--out", run).code == 0
    assert_one_line_error(cli("train", "--resume", run, "--out", tmp_path / "x"), "--out cannot be combined")


def test_malicious_state_pt_is_refused_and_never_runs(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "2", "--out", run).code == 0
    summary = json.loads((run / "summary.json").read_text())
    summary["status"] = "interrupted"
    (run / "summary.json").write_text(json.dumps(summary))
    marker = tmp_path / "pwned"
    (run / "state.pt").write_bytes(pickle.dumps({"format": 1, "x": Payload(marker)}))
    assert_one_line_error(cli("train", "--resume", run), "refused to load", "state.pt")
    assert not marker.exists()
    (run / "state.pt").write_bytes(b"\x80\x04garbage")
    assert_one_line_error(cli("train", "--resume", run), "state.pt")


def test_keep_best_and_validation_split(cli, tmp_path):
    run = tmp_path / "run"
    result = cli("train", *SYNTH, "--epochs", "4", "--keep", "2", "--val-split", "0.1", "--out", run, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-003.safetensors",
                                                                       "epoch-004.safetensors"]
    assert summary["best_metric"] == "val_accuracy" and summary["val_examples"] == 200
    assert summary["train_examples"] == 1800
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("val_accuracy" in r for r in records)
    best_epoch = max(records, key=lambda r: r["val_accuracy"])["epoch"]
    assert summary["best_epoch"] == best_epoch
    assert (run / "best.safetensors").read_bytes() == \
        (run / "checkpoints" / "epoch-004.safetensors").read_bytes() if best_epoch == 4 else True


def test_best_follows_test_accuracy_without_validation(cli, tmp_path):
    result = cli("train", *SYNTH, "--epochs", "2", "--out", tmp_path / "r", "--json")
    assert result.json()["best_metric"] == "test_accuracy"


def test_state_pt_loads_with_weights_only(cli, tmp_path):
    import torch
    run = tmp_path / "run"
    assert cli("train", *SYNTH, "--epochs", "1", "--out", run, "--engine", "scratch").code == 0
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["loop"]["epoch"] == 1 and set(state["rng"]) >= {"python", "numpy", "torch", "data"}
    assert "fc1.weight" in state["model"]
