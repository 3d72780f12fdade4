"""Checkpoints, exact resume after SIGKILL or Ctrl-C, and what resume refuses."""
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest

from cifar_files import Payload
from conftest import SYNTH, assert_one_line_error

# 40 steps per epoch: kills land at chosen steps (training.hooks), so no size is needed to "be slow enough"
SLOW_SYNTH = {"shape": [1, 16, 16], "classes": 4, "train": 1280, "test": 200}


def write_config(tmp_path, engine="torch", epochs=3):
    cfg = {"model": "simplenet", "dataset": "synthetic", "synthetic": SLOW_SYNTH, "epochs": epochs,
           "batch_size": 32, "optimizer": "momentum", "lr": 0.01, "engine": engine, "seed": 3}
    path = tmp_path / f"cfg-{engine}.json"
    path.write_text(json.dumps(cfg))
    return path


def spawn(*args, pause_at=None, marker=None):
    """A child ``deepdive`` process; with ``pause_at`` ("step:N", "written:E", "checkpoint:E") it writes
    ``marker`` when it reaches that point of the loop and waits there for a signal (training.hooks)."""
    env = dict(os.environ)
    if pause_at:
        env.update(DEEPDIVE_PAUSE_AT=pause_at, DEEPDIVE_PAUSE_FILE=str(marker))
    return subprocess.Popen([sys.executable, "-m", "deepdive", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for(path, proc=None, timeout=240):
    """Until ``path`` exists (the deadline only turns a hang into a failure; nothing is timed)."""
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before {path} appeared: {proc.stderr.read()}")
        time.sleep(0.02)


def stop_at(args, point, tmp_path, sig):
    """Run ``deepdive ARGS`` until ``point``, then send ``sig``; returns the finished process and its stderr."""
    marker = tmp_path / f"paused-{point.replace(':', '-')}"
    proc = spawn(*args, pause_at=point, marker=marker)
    wait_for(marker, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc, err


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


STEPS_PER_EPOCH = 1280 // 32


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of ``write_config(engine)``, trained once per engine for all this module's kill
    tests (each would otherwise train the same reference again)."""
    made = {}

    def get(engine="torch"):
        if engine not in made:
            folder = tmp_path_factory.mktemp(f"reference-{engine}")
            made[engine] = folder / "run"
            finish("train", "--config", write_config(folder, engine), "--out", made[engine])
        return made[engine]
    return get


@pytest.mark.parametrize("engine", ["torch", "scratch"])
def test_sigkill_at_random_points_then_resume_is_bit_identical(tmp_path, engine, reference):
    """SIGKILL at a step drawn at random, and at the write points between an epoch's files and its state.pt."""
    cfg = write_config(tmp_path, engine)
    reference = reference(engine)
    rng = random.Random(engine)
    points = [f"step:{rng.randrange(STEPS_PER_EPOCH + 1, 3 * STEPS_PER_EPOCH)}"]
    if engine == "torch":  # the write points are the loop's own (shared by both engines): once is enough
        points += [f"written:{rng.randrange(1, 3)}", f"checkpoint:{rng.randrange(1, 3)}"]
    for point in points:
        run = tmp_path / f"killed-{point.replace(':', '-')}"
        proc, _ = stop_at(["train", "--config", cfg, "--out", run], point, tmp_path, signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL
        killed = json.loads((run / "summary.json").read_text())
        assert killed["status"] == "running" and killed["epochs"] < 3  # the kill landed mid-run
        finish("train", "--resume", run)
        assert weights(run) == weights(reference), point
        assert metrics_without_timing(run) == metrics_without_timing(reference), point
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_kill_before_the_first_checkpoint_restarts_from_scratch(tmp_path, reference):
    cfg = write_config(tmp_path)
    reference = reference()
    run = tmp_path / "early"
    stop_at(["train", "--config", cfg, "--out", run], "step:5", tmp_path, signal.SIGKILL)
    assert not (run / "state.pt").exists()  # step 5 of epoch 1: no checkpoint yet
    done = finish("train", "--resume", run)
    assert "no checkpoint yet" in done.stderr
    assert weights(run) == weights(reference)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_epoch_checkpoints_and_resumes_exactly(tmp_path, sig, code, reference):
    cfg = write_config(tmp_path)
    reference = reference()
    run = tmp_path / "stopped"
    proc, err = stop_at(["train", "--config", cfg, "--out", run], f"step:{STEPS_PER_EPOCH + 7}", tmp_path, sig)
    assert proc.returncode == code, err
    assert "deepdive train --resume" in err and "Traceback" not in err
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    import torch
    loop = torch.load(run / "state.pt", weights_only=True)["loop"]
    assert (loop["epoch"], loop["step_in_epoch"], loop["global_step"]) == (1, 7, STEPS_PER_EPOCH + 7)
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
    result = cli("train", *SYNTH, "--epochs", "4", "--keep", "2", "--val-split", "0.1", "--out", run, "--json",
                 "--opt", "sgd", "--lr", "0.05")
    assert result.code == 0, result.err
    summary = result.json()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-003.safetensors",
                                                                       "epoch-004.safetensors"]
    assert summary["best_metric"] == "val_accuracy" and summary["val_examples"] == 200
    assert summary["train_examples"] == 1800
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("val_accuracy" in r for r in records)
    best_epoch = max(records, key=lambda r: r["val_accuracy"])["epoch"]  # the first of equals
    assert summary["best_epoch"] == best_epoch
    # --checkpoint-hist (the ecosystem's name for --keep) keeping every epoch: best is the best epoch's file
    every = tmp_path / "every"
    assert cli("train", *SYNTH, "--epochs", "4", "--checkpoint-hist", "4", "--val-split", "0.1", "--out", every,
               "--opt", "sgd", "--lr", "0.05").code == 0
    assert (every / "metrics.jsonl").read_text().count("\n") == 4
    best = json.loads((every / "summary.json").read_text())["best_epoch"]
    assert (every / "best.safetensors").read_bytes() == \
        (every / "checkpoints" / f"epoch-{best:03d}.safetensors").read_bytes()
    others = [e for e in range(1, 5) if e != best]
    assert any((every / "best.safetensors").read_bytes() != (every / "checkpoints" / f"epoch-{e:03d}.safetensors")
               .read_bytes() for e in others)


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
