"""A state.pt of format 1 (the loop's fields at the top level, three separate clocks) read into today's
``TrainState`` (``TrainState.from_legacy``), directly and through a resume; and the engines' numbers the loop and
the predictor read (``cpu_logits``, ``cross_entropy``) against values computed here by hand."""
import json
import shutil

import numpy as np
import pytest
import torch

from deepdive.training.train_state import TrainState

LOOP = {"epoch": 2, "step_in_epoch": 5, "global_step": 25, "images_seen": 800, "loss_sum": 12.5, "seen": 160,
        "best": {"metric": "val_accuracy", "value": 0.625, "epoch": 2}, "target": {"target_accuracy": 0.9},
        "finished_early": True, "first_loss": 2.25, "block_loss_sum": 4.0, "block_steps": 3,
        "last_block_loss": 1.25}


def test_a_format_1_state_keeps_every_field_and_merges_its_clocks():
    order = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    saved = {"format": 1, **LOOP, "order": order, "train_seconds": 100.25, "epoch_seconds": 20.5,
             "eval_seconds": 7.75, "model": {}, "optimizer": {}, "rng": {}}
    state = TrainState.from_legacy(saved)
    values = state.to_dict()
    assert values.pop("order") is order
    assert values == {**LOOP, "clocks": {"train": 120.75, "eval": 7.75}, "epoch_train_start": 100.25}
    assert state.clocks == {"train": 100.25 + 20.5, "eval": 7.75}


@pytest.mark.parametrize("clocks, train, eval_, start", [
    ({}, 0.0, 0.0, 0.0),
    ({"epoch_seconds": 3.5}, 3.5, 0.0, 0.0),
    ({"train_seconds": 9.0}, 9.0, 0.0, 9.0),
    ({"eval_seconds": 2.5}, 0.0, 2.5, 0.0),
])
def test_a_format_1_state_without_a_clock_counts_it_as_zero(clocks, train, eval_, start):
    state = TrainState.from_legacy({"epoch": 1, **clocks})
    assert state.clocks == {"train": train, "eval": eval_} and state.epoch_train_start == start
    assert all(type(v) is float for v in (*state.clocks.values(), state.epoch_train_start))
    fresh = TrainState().to_dict()
    assert {k: v for k, v in state.to_dict().items() if k not in ("epoch", "clocks", "epoch_train_start")} == \
        {k: v for k, v in fresh.items() if k not in ("epoch", "clocks", "epoch_train_start")}
    assert state.epoch == 1


def test_a_resume_from_a_format_1_state_continues_as_from_format_2(cli, tmp_path):
    """The same checkpoint in both formats (mid-epoch 2, at its first step, with the legacy clocks
    train 100.25 + epoch 20.5, eval 7.75) resumes to the same weights and metrics; with a clock that stands still
    the run's and the epoch's training seconds are the restored ones: 120.75 in all, 20.5 in the epoch."""
    from deepdive.storage.runs import STATE
    from deepdive.storage.state_file import load_state
    from deepdive.training.resume import open_resume
    from deepdive.training.setup import run_training

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": "simplenet", "dataset": "synthetic", "epochs": 1, "batch_size": 16,
                                  "seed": 4, "synthetic": {"shape": [1, 8, 8], "classes": 4, "train": 64,
                                                           "test": 32}, "figures": False}))
    legacy, current = tmp_path / "legacy", tmp_path / "current"
    assert cli("train", "--config", config, "--out", legacy).code == 0
    shutil.copytree(legacy, current)
    saved = torch.load(legacy / STATE, weights_only=True)
    loop = saved.pop("loop")
    assert loop["order"] is None and loop["epoch"] == 1  # an epoch's end: make it the next one's first step
    loop.update(order=torch.randperm(64, generator=torch.Generator().manual_seed(8)), step_in_epoch=0, loss_sum=0.0,
                seen=0, block_loss_sum=0.0, block_steps=0, last_block_loss=None)
    del loop["clocks"], loop["epoch_train_start"]
    torch.save({**saved, "format": 1, **loop, "train_seconds": 100.25, "epoch_seconds": 20.5,
                "eval_seconds": 7.75}, legacy / STATE)
    torch.save({**saved, "format": 2, "loop": {**loop, "clocks": {"train": 120.75, "eval": 7.75},
                                              "epoch_train_start": 100.25}}, current / STATE)
    summaries = []
    for run_dir in (legacy, current):
        run, cfg, differences = open_resume(str(run_dir), {"epochs": 2}, force=True)
        summaries.append(run_training(cfg, resume_state=load_state(run.file(STATE)), run=run, forced=differences,
                                      clock=lambda: 0.0))
    for summary in summaries:
        assert summary["train_seconds"] == 120.75 and summary["eval_seconds"] == 7.75 and summary["epochs"] == 2
    records = [[json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
               for run_dir in (legacy, current)]
    assert records[0] == records[1] and records[0][-1]["epoch"] == 2 and records[0][-1]["seconds"] == 20.5
    assert records[0][-1]["images_per_second"] == 64 / 20.5
    assert (legacy / "model.safetensors").read_bytes() == (current / "model.safetensors").read_bytes()


# -- the engines' numbers --------------------------------------------------------------------------------------------
@pytest.fixture
def scratch_engine():
    """The scratch engine, in float64 (its logits then are float64 NumPy arrays); it sets torch's threads to 1,
    put back afterwards."""
    from deepdive.training.engines import ScratchEngine

    threads = torch.get_num_threads()
    yield ScratchEngine(dtype=np.float64)
    torch.set_num_threads(threads)


def test_scratch_logits_reach_torch_as_float32(scratch_engine):
    import deepdive.scratch as scratch
    import deepdive.scratch.nn as snn

    model = scratch_engine.build(snn.Linear(4, 3))
    x = np.random.default_rng(2).standard_normal((5, 4))
    logits = model(scratch.Tensor(x))
    assert logits.data.dtype == np.float64
    out = scratch_engine.cpu_logits(logits)
    weight, bias = model.weight.data, model.bias.data
    expected = torch.from_numpy((x @ weight.T + bias).astype(np.float32))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (5, 3)
    assert torch.equal(out, expected)
    reference = torch.nn.Linear(4, 3).double()  # the torch model with the same weights
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(weight))
        reference.bias.copy_(torch.from_numpy(bias))
        torch.testing.assert_close(out, reference(torch.from_numpy(x)).float(), rtol=1e-6, atol=1e-6)


def cross_entropy_by_hand(logits: np.ndarray, targets: np.ndarray, reduction: str, smoothing: float) -> np.ndarray:
    """(1 − ε)·(−log p_y) + ε·mean_k(−log p_k) per example, in float64."""
    z = logits.astype(np.float64)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    losses = (1 - smoothing) * -log_p[np.arange(len(targets)), targets] + smoothing * -log_p.mean(axis=1)
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


LOGITS = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0], [-2.0, 1.5, 1.0], [0.0, 0.0, 0.0]])
TARGETS = np.array([0, 2, 2, 1])


@pytest.mark.parametrize("kwargs, reduction, smoothing", [
    ({}, "mean", 0.0), ({"reduction": "sum"}, "sum", 0.0), ({"reduction": "none"}, "none", 0.0),
    ({"label_smoothing": 0.1}, "mean", 0.1), ({"reduction": "sum", "label_smoothing": 0.3}, "sum", 0.3),
])
def test_the_engines_cross_entropy_is_the_formula(scratch_engine, kwargs, reduction, smoothing):
    import deepdive.scratch as scratch
    from deepdive.training.engines import TorchEngine

    expected = cross_entropy_by_hand(LOGITS, TARGETS, reduction, smoothing)
    torch_loss = TorchEngine().cross_entropy(torch.tensor(LOGITS, dtype=torch.bfloat16), torch.tensor(TARGETS),
                                             **kwargs)
    assert torch_loss.dtype == torch.float32  # bf16 logits (autocast) give a float32 loss
    bf16 = torch.tensor(LOGITS, dtype=torch.bfloat16).float().numpy()  # (these logits are exact in bf16)
    np.testing.assert_allclose(torch_loss.numpy(), cross_entropy_by_hand(bf16, TARGETS, reduction, smoothing),
                               rtol=1e-6)
    scratch_loss = scratch_engine.cross_entropy(scratch.Tensor(LOGITS.copy()), TARGETS, **kwargs)
    np.testing.assert_allclose(scratch_loss.data, expected, rtol=1e-12)
