"""Numerical failure, failed writes, atomic files, gradient clipping."""
import errno
import json
import os

import numpy as np
import pytest
import torch

from conftest import SYNTH, assert_one_line_error
from deepdive.training import engines
from deepdive.storage import state_file as state_module
from deepdive.storage.atomic import write_atomic, write_bytes_atomic
from deepdive.errors import WriteFailed


def test_nan_stops_at_once_keeps_last_good_checkpoint(cli, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = engines.TorchEngine.cross_entropy

    def poisoned(self, logits, targets, reduction="mean", label_smoothing=0.0):
        loss = original(self, logits, targets, reduction, label_smoothing)
        if reduction == "mean":
            calls["n"] += 1
            if calls["n"] == 32 + 5:  # 2000 images / 64 = 32 steps per epoch: step 5 of epoch 2
                return loss * float("nan")
        return loss

    monkeypatch.setattr(engines.TorchEngine, "cross_entropy", poisoned)
    run = tmp_path / "run"
    result = cli("train", *SYNTH, "--epochs", "3", "--keep", "3", "--out", run)
    assert result.code == 1
    assert "epoch 2, step 5" in result.err and "learning rate" in result.err
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert (run / "model.safetensors").read_bytes() == (run / "checkpoints" / "epoch-001.safetensors").read_bytes()
    assert torch.load(run / "state.pt", weights_only=True)["loop"]["epoch"] == 1


def test_disk_full_while_checkpointing_exits_1_and_keeps_previous(cli, tmp_path, monkeypatch):
    original = state_module.save_state
    calls = {"n": 0}

    def full_disk(path, state):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        original(path, state)

    monkeypatch.setattr(state_module, "save_state", full_disk)
    run = tmp_path / "run"
    result = cli("train", *SYNTH, "--epochs", "3", "--out", run)
    assert result.code == 1
    assert "No space left on device" in result.err and "previous checkpoint is intact" in result.err
    assert torch.load(run / "state.pt", weights_only=True)["loop"]["epoch"] == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]


def test_read_only_filesystem_on_weights(cli, tmp_path, monkeypatch):
    from deepdive.storage import weights as checkpoint
    calls = {"n": 0}
    original = checkpoint.write_atomic

    def read_only(path, write):
        calls["n"] += 1
        if calls["n"] >= 3:  # epoch 2's weights
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        original(path, write)

    monkeypatch.setattr(checkpoint, "write_atomic", read_only)
    result = cli("train", *SYNTH, "--epochs", "3", "--out", tmp_path / "run")
    assert result.code == 1 and "Read-only file system" in result.err


def test_out_under_a_file_is_bad_input(cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    result = cli("train", *SYNTH, "--out", tmp_path / "afile" / "run")
    assert result.code == 2 and "Traceback" not in result.err


def test_atomic_write_leaves_old_file_or_new_never_torn(tmp_path):
    target = tmp_path / "f.bin"
    write_bytes_atomic(target, b"old contents")

    def half_then_crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"new con")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteFailed, match=r"f\.bin failed \(No space left on device; .* free there\)"):
        write_atomic(target, half_then_crash)
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["f.bin"]
    write_bytes_atomic(target, b"new contents")
    assert target.read_bytes() == b"new contents"


def test_grad_clip_scratch_matches_torch():
    from deepdive.training.engines import ScratchEngine
    from deepdive.scratch import Tensor
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]

    class Holder:
        def __init__(self, params):
            self._params = params

        def parameters(self):
            return iter(self._params)

    t_params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, g in zip(t_params, grads):
        p.grad = torch.from_numpy(g.copy())
    s_params = [Tensor(np.zeros(g.shape), requires_grad=True) for g in grads]
    for p, g in zip(s_params, grads):
        p.grad = g.copy()
    t_norm = float(torch.nn.utils.clip_grad_norm_(t_params, 1.0))
    s_norm = ScratchEngine.clip_grad_norm(None, Holder(s_params), 1.0)
    assert s_norm == pytest.approx(t_norm)
    for s, t in zip(s_params, t_params):
        assert np.allclose(s.grad, t.grad.numpy())


def test_grad_clip_flag_trains(cli, tmp_path):
    result = cli("train", *SYNTH, "--epochs", "2", "--grad-clip", "0.5", "--out", tmp_path / "r", "--json")
    assert result.code == 0 and result.json()["test_accuracy"] > 0.9


def test_a_last_batch_too_small_for_batchnorm_is_one_line(cli, tmp_path):
    """fastnet on 16x16 images pools to 1x1: BatchNorm cannot normalize a last batch of one image in training."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": "fastnet", "dataset": "synthetic", "batch_size": 32, "epochs": 1,
                                  "synthetic": {"shape": [3, 16, 16], "classes": 2, "train": 33, "test": 4}}))
    result = cli("train", "--config", config, "--out", tmp_path / "run")
    assert_one_line_error(result, "too small for the model's BatchNorm", "--batch-size")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
