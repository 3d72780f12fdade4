"""Data-parallel training (torchrun + DDP, training/ddp/) on the CPU with gloo and 2 processes.

Two launches serve every multi-process check (each costs seconds of imports): a 2-process run started by
``--nproc 2``, and the same run under torchrun ``--max-restarts 1`` whose rank 1 is SIGKILLed at a chosen
step (training.hooks, DEEPDIVE_PAUSE_RANK). Everything else runs in this process. No wall-clock timing: the
kill lands at a step, deadlines only turn a hang into a failure.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import SYNTH, assert_one_line_error

# 301 images in global batches of 32: 10 steps an epoch, the last of 13 images split 7/6 between the processes
# (the loss weighting matters there); 203 test images split 102/101 (a padded duplicate would show).
# (no end-of-run figures: the in-process runs draw none, conftest.no_run_figures, and the folders are compared)
CONFIG = {"model": "simplenet", "dataset": "synthetic", "epochs": 2, "batch_size": 32, "optimizer": "momentum",
          "lr": 0.02, "seed": 5, "synthetic": {"shape": [1, 8, 8], "classes": 10, "train": 301, "test": 203},
          "figures": False}
STEPS_PER_EPOCH = 10
# float32 tolerance: the two processes' gradients are summed by the all-reduce, one process sums all 32 images'
# in one matrix product; over these 20 steps the weights (|w| up to ~0.5) differ by ~1e-7 (measured 9e-8 after
# 126 steps), so 1e-6 absolute. A wrong share, order or weighting of the 7/6 batch moves them by ~1e-3.
PARAMETER_ATOL = 1e-6


def weights(run):
    from safetensors.torch import load_file
    return load_file(str(run / "model.safetensors"))


def max_difference(a, b) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def relative_difference(a, b) -> float:
    return max(float((a[k] - b[k]).norm() / b[k].norm()) for k in a)


def deepdive(*args, env=None, **kwargs):
    return subprocess.Popen([sys.executable, "-m", *map(str, args)], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The 2-process run (``--nproc 2``) and the killed-and-restarted one (torchrun), launched together."""
    folder = tmp_path_factory.mktemp("ddp")
    cache = {"DEEPDIVE_CACHE": str(tmp_path_factory.getbasetemp() / "deepdive-cache")}  # conftest's private one
    config = folder / "config.json"
    config.write_text(json.dumps(CONFIG))
    two = deepdive("deepdive", "train", "--config", config, "--out", folder / "two", "--nproc", "2", env=cache)
    # (both launches at once: much of a launch is waiting - for imports of the other processes, for the
    # rendezvous, for torchrun's checks - and the second keeps the cores busy meanwhile)
    # rank 1 pauses after step 15 (epoch 2; epoch 1's checkpoint is written), we copy the folder as the two
    # processes left it there, then SIGKILL rank 1: torchrun restarts both, which resume from state.pt
    marker = folder / "paused"
    restarted = deepdive("torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--max-restarts", "1",
                         "-m", "deepdive", "train", "--config", config, "--out", folder / "restarted",
                         env={**cache, "DEEPDIVE_PAUSE_AT": f"step:{STEPS_PER_EPOCH + 5}",
                              "DEEPDIVE_PAUSE_FILE": str(marker), "DEEPDIVE_PAUSE_RANK": "1"})
    deadline = time.time() + 240  # only turns a hang into a failure; nothing is timed
    while not marker.exists() or not marker.read_text().endswith("\n"):
        assert time.time() < deadline and restarted.poll() is None, restarted.communicate()[1]
        time.sleep(0.02)
    shutil.copytree(folder / "restarted", folder / "mid-run")
    os.kill(int(marker.read_text().split()[1]), signal.SIGKILL)
    _, restart_err = restarted.communicate(timeout=240)
    assert restarted.returncode == 0, restart_err
    _, err = two.communicate(timeout=240)
    assert two.returncode == 0, err
    return {"folder": folder, "config": config, "two": folder / "two", "two_err": err,
            "restarted": folder / "restarted", "restart_err": restart_err, "mid_run": folder / "mid-run"}


def test_two_processes_train_as_one_and_rank_0_alone_writes(launched, cli, tmp_path):
    two = launched["two"]
    # one process, same seed and global batch: the same parameters within float32 summation order
    one = tmp_path / "one"
    assert cli("train", "--config", launched["config"], "--out", one).code == 0
    assert max_difference(weights(two), weights(one)) <= PARAMETER_ATOL
    # only rank 0 wrote: one metrics line per epoch (a second writer appends its own), the files of one run
    records = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    summary = json.loads((two / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert json.loads((one / "summary.json").read_text())["world_size"] == 1
    # ... and only rank 0 spoke
    assert launched["two_err"].count("epoch 2/2") == 1 and "Traceback" not in launched["two_err"]
    # every test image counted once: the sharded evaluation is one process's evaluation of the same weights
    evaluated = cli("evaluate", two, "--json").json()
    assert evaluated["examples"] == 203 and 0 < evaluated["test_accuracy"] < 1
    assert summary["test_accuracy"] == evaluated["test_accuracy"]
    assert summary["test_loss"] == pytest.approx(evaluated["test_loss"], rel=1e-6)


def test_a_killed_rank_restarts_and_ends_bit_identical(launched):
    """SIGKILL of rank 1 mid-epoch under --max-restarts 1: the survivor says why it stops, torchrun restarts
    both, they resume the folder's last checkpoint and end with the uninterrupted run's weights, bit for bit."""
    restarted, err = launched["restarted"], launched["restart_err"]
    assert "lost contact with the others" in err and "restart 1: resuming" in err
    assert (restarted / "model.safetensors").read_bytes() == (launched["two"] / "model.safetensors").read_bytes()
    assert len((restarted / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((restarted / "summary.json").read_text())["status"] == "completed"


def test_a_two_process_checkpoint_resumes_in_one_process(launched, cli):
    """state.pt holds no rank: the 2-process run's epoch-1 checkpoint finishes in 1 process."""
    mid = launched["mid_run"]
    assert len((mid / "metrics.jsonl").read_text().splitlines()) == 1
    result = cli("train", "--resume", mid, "--json")
    assert result.code == 0, result.err
    resumed, uninterrupted = result.json(), json.loads((launched["two"] / "summary.json").read_text())
    assert resumed["world_size"] == 1 and resumed["epochs"] == 2
    assert abs(resumed["test_accuracy"] - uninterrupted["test_accuracy"]) <= 0.005
    assert relative_difference(weights(mid), weights(launched["two"])) <= 1e-3


def test_what_distributed_training_refuses(cli, tmp_path, monkeypatch):
    """Checked by the --nproc launcher before any process starts: one line each."""
    out = ["--out", tmp_path / "run", "--nproc", "2"]
    assert_one_line_error(cli("train", *SYNTH, "-b", "33", *out), "-b 33", "multiple of 2")
    assert_one_line_error(cli("train", *SYNTH, "--engine", "scratch", *out), "--engine scratch")
    assert_one_line_error(cli("train", *SYNTH, "--dist-timeout", "0", *out), "--dist-timeout")
    monkeypatch.setenv("RANK", "0")
    assert_one_line_error(cli("train", *SYNTH, *out), "under torchrun")
    assert not (tmp_path / "run").exists()


def test_random_numbers_are_drawn_for_the_global_batch():
    """Dropout masks and augmentation drawn for the global batch, each process keeping its rows: any split of a
    batch gets the very numbers one process draws, and leaves the generators where one process leaves them."""
    import torch

    from deepdive.data.augment import BatchAugmenter
    from deepdive.training.ddp.layers import GlobalBatch, GlobalBatchDropout, global_batch_layers

    x = torch.randn(13, 5)
    start = torch.get_rng_state()
    whole = torch.nn.functional.dropout(x, 0.5, True)
    after = torch.get_rng_state()
    batch = GlobalBatch()
    dropout = global_batch_layers(torch.nn.Sequential(torch.nn.Dropout(0.5)), False, "cpu", batch)[0]
    assert type(dropout) is GlobalBatchDropout and dropout.global_batch is batch
    parts = []
    for lo, hi in ((0, 7), (7, 13)):  # two processes, each from the same generator state
        torch.set_rng_state(start)
        with batch.step(lo, 13):
            parts.append(dropout(x[lo:hi]))
        assert torch.equal(torch.get_rng_state(), after)
    assert torch.equal(torch.cat(parts), whole)
    assert batch.rows is None  # outside a step (evaluation in train mode): plain dropout
    torch.set_rng_state(start)
    assert torch.equal(dropout(x), whole)

    images, index = torch.randn(13, 1, 6, 6), torch.arange(13)
    whole = BatchAugmenter("crop-flip", 2, 13, seed=1)(images, index, 0)
    parts = [BatchAugmenter("crop-flip", 2, 13, seed=1)(images[lo:hi], index[lo:hi], 0, rows=(lo, 13))
             for lo, hi in ((0, 7), (7, 13))]
    assert torch.equal(torch.cat(parts), whole)


@pytest.mark.parametrize("momentum", [0.4, None])  # None: the cumulative average, by batches counted
def test_cpu_sync_batchnorm_normalizes_the_global_batch(monkeypatch, momentum):
    """--sync-bn on the CPU: this process's rows normalized with the statistics of all processes' rows, and
    the input gradient of the global batch's BatchNorm. The other process's sums arrive through a stand-in
    all-reduce, computed here from its rows independently. The channels' variances straddle 1 and one is
    near eps; the running statistics start away from zero; two steps, so the count and the average show."""
    import torch
    import torch.distributed as tdist

    from deepdive.training.ddp.layers import CpuSyncBatchNorm

    torch.manual_seed(0)
    scale = torch.tensor([2.0, 0.5, 0.01]).view(1, 3, 1, 1)  # variances 4, 0.25 and 1e-4 (eps is 1e-5) ...
    offset = torch.tensor([1.0, -0.5, 0.0]).view(1, 3, 1, 1)  # ... the last centred: float32 sums stay exact
    reference = torch.nn.BatchNorm2d(3, momentum=momentum)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
        reference.running_mean.uniform_(-1, 1)
        reference.running_var.uniform_(0.5, 2)
    sync = CpuSyncBatchNorm(3, momentum=momentum)
    sync.load_state_dict(reference.state_dict())
    mine, theirs = slice(0, 7), slice(7, 12)
    dims = (0, 2, 3)
    for step in range(2):
        x, grad = torch.randn(12, 3, 4, 4) * scale + offset, torch.randn(12, 3, 4, 4)
        x_all = x.clone().requires_grad_()
        reference.weight.grad = None
        (reference(x_all) * grad).sum().backward()
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        xhat = (x - mean.view(1, 3, 1, 1)) / (var.view(1, 3, 1, 1) + reference.eps).sqrt()
        arriving = [torch.cat([x[theirs].sum(dims), (x[theirs] ** 2).sum(dims), torch.tensor([5.0 * 16])]).double(),
                    torch.cat([grad[theirs].sum(dims), (grad[theirs] * xhat[theirs]).sum(dims)]).double()]

        def all_reduce(tensor, *args, **kwargs):
            tensor.add_(arriving.pop(0).to(tensor.dtype))

        monkeypatch.setattr(tdist, "all_reduce", all_reduce)
        monkeypatch.setattr(tdist, "is_initialized", lambda: True)
        monkeypatch.setattr(tdist, "get_world_size", lambda *a: 2)
        x_mine = x[mine].clone().requires_grad_()
        sync.weight.grad = None
        out = sync(x_mine)
        (out * grad[mine]).sum().backward()
        assert not arriving and out.dtype == torch.float32
        expected = xhat * reference.weight.view(1, 3, 1, 1) + reference.bias.view(1, 3, 1, 1)
        assert torch.allclose(out, expected[mine], rtol=1e-4, atol=1e-5)
        assert torch.allclose(x_mine.grad, x_all.grad[mine], rtol=1e-3, atol=1e-5)
        assert torch.allclose(sync.running_mean, reference.running_mean, rtol=1e-5, atol=1e-7)
        assert torch.allclose(sync.running_var, reference.running_var, rtol=1e-5, atol=1e-9)
        assert int(sync.num_batches_tracked) == int(reference.num_batches_tracked) == step + 1
        # γ's gradient stays this process's share: DDP adds the other's
        assert torch.allclose(sync.weight.grad + (grad[theirs] * xhat[theirs]).sum(dims), reference.weight.grad,
                              atol=1e-4)
    sync.eval(), reference.eval()  # evaluation: the running statistics, no exchange
    monkeypatch.setattr(tdist, "all_reduce", lambda *a, **k: pytest.fail("no all-reduce in eval mode"))
    x = torch.randn(4, 3, 4, 4) * scale
    assert torch.allclose(sync(x), reference(x), rtol=1e-5, atol=1e-6)


def test_data_parallel_training_is_composed_into_the_one_loop():
    """No Trainer subclass anywhere in the package: a data-parallel run is the same loop holding another
    process group, and the single-process group offers every method of the real one, with the same signature."""
    import importlib
    import inspect
    import pkgutil

    import deepdive
    from deepdive.training.ddp.group import OneProcess, ProcessGroup
    from deepdive.training.loop import Trainer

    for module in pkgutil.walk_packages(deepdive.__path__, "deepdive."):
        if module.name.startswith("deepdive.training"):
            importlib.import_module(module.name)
    assert Trainer.__subclasses__() == []

    def methods(cls):
        return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, inspect.isfunction)
                if not name.startswith("_")}

    assert methods(OneProcess) == methods(ProcessGroup)
    assert set(methods(OneProcess)) >= {"share", "sum", "agree", "fail", "close", "wrap", "guard"}
    one = OneProcess()
    assert (one.main, one.world, one.share(13), one.sum([1.5, 2.0])) == (True, 1, (0, 13), [1.5, 2.0])


def test_process_group_shares_and_one_process_is_the_whole():
    """Contiguous shares in rank order, the first n mod W one larger; one process takes every row of a batch
    as it came (a streamed batch may be short of the planned size)."""
    import torch

    from deepdive.training.ddp.group import OneProcess, ProcessGroup, Rows

    groups = [ProcessGroup(rank, 3, rank, 3, torch.device("cpu"), timeout=60.0) for rank in range(3)]
    assert [g.share(13) for g in groups] == [(0, 5), (5, 9), (9, 13)]
    assert [g.share(2) for g in groups] == [(0, 1), (1, 2), (2, 2)]
    assert [g.rows(4, 13) for g in groups] == [Rows(0, 5, 13), Rows(5, 4, 13), Rows(9, 4, 13)]
    assert OneProcess().rows(30, 32) == Rows(0, 30, 30)


def test_training_modules_keep_within_the_size_limits():
    """No module of the loop's floor over 400 lines, no function over 60."""
    import ast
    from pathlib import Path

    import deepdive

    root = Path(deepdive.__file__).parent
    too_long = []
    for path in [*sorted((root / "training").rglob("*.py")), root / "storage" / "read_only_run.py"]:
        text = path.read_text()
        if len(text.splitlines()) > 400:
            too_long.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{path.name}: {node.name}, {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []


def test_the_real_process_group_of_one_trains_as_one_process(cli, tmp_path, monkeypatch):
    """The loop holding a real ``ProcessGroup`` (gloo, one process, in this process: DDP's wrapper, the step's
    all-reduce of loss, signals and clock, the sharded evaluation's sums, rank 0's writes) ends with the very
    weights and metrics of the same run in ``OneProcess``: the group's code runs here, where the in-process
    tests (and mutation testing) see it, not only in the 2-process launches above."""
    import torch
    import torch.distributed as tdist

    from deepdive.training.ddp import torchrun
    from deepdive.training.ddp.group import ProcessGroup

    config = tmp_path / "config.json"
    config.write_text(json.dumps({**CONFIG, "model": "article-cnn", "synthetic": {**CONFIG["synthetic"],
                                  "shape": [3, 9, 9]}, "augment": "crop-flip", "ema": 0.9}))
    alone = tmp_path / "alone"
    assert cli("train", "--config", config, "--out", alone).code == 0

    def one_of_one(cfg):
        store = tdist.FileStore(str(tmp_path / "store"), 1)
        tdist.init_process_group("gloo", store=store, rank=0, world_size=1)
        return ProcessGroup(0, 1, 0, 1, torch.device("cpu"), timeout=60.0)

    monkeypatch.setattr(torchrun, "start", one_of_one)
    grouped = tmp_path / "grouped"
    try:
        assert cli("train", "--config", config, "--out", grouped).code == 0
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
    assert max_difference(weights(grouped), weights(alone)) == 0.0
    lines = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (alone, grouped)]
    keys = ("train_loss", "test_loss", "test_accuracy")
    assert [[m[k] for k in keys] for m in lines[0]] == [[m[k] for k in keys] for m in lines[1]]


def test_the_launcher_hands_torchrun_this_very_command(cli, tmp_path, monkeypatch):
    """``--nproc N`` runs torchrun's own launcher in this process on the same command without --nproc: single
    node, N processes, the run folder every process must name, and each process's share of the cores."""
    from deepdive.training.ddp import launcher
    from deepdive.training.ddp.torchrun import threads_per_process

    calls = []
    monkeypatch.setattr(launcher, "_torchrun", lambda arguments, threads: calls.append((arguments, threads)) or 7)
    out = tmp_path / "run"
    assert cli("train", *SYNTH, "--nproc", "2", "-b", "8", "--out", out).code == 7  # torchrun's exit code
    expected = ["--standalone", "--nproc-per-node", "2", "-m", "deepdive", "train", *SYNTH, "-b", "8", "--out",
                str(out)]
    assert calls.pop() == (expected, threads_per_process("simplenet", 2))
    assert cli("train", *SYNTH, "--nproc=3", "-b", "9", "--threads", "1").code == 7  # no --out: rank 0's is added
    arguments, threads = calls.pop()
    assert arguments[:5] == ["--standalone", "--nproc-per-node", "3", "-m", "deepdive"] and threads == 1
    assert arguments[5:-2] == ["train", *SYNTH, "-b", "9", "--threads", "1"] and arguments[-2] == "--out"
    assert arguments[-1].startswith("runs") and not any(a.startswith("--nproc") for a in arguments[5:])
    assert cli("train", *SYNTH, "--nproc", "1", "--epochs", "1", "--out", out).code == 0  # one: this process
    assert not calls and (out / "model.safetensors").is_file()
    assert cli("train", "--resume", out, "--nproc", "2").code == 7  # a resume names its folder already
    assert calls.pop()[0][5:] == ["train", "--resume", str(out)]


@pytest.mark.parametrize("args, message", [
    (["-b", "33", "--nproc", "2"], "-b 33 does not divide among 2 processes (-b is the global batch, each process "
                                  "takes b/2): give a multiple of 2, e.g. 32 or 34"),
    (["-b", "2", "--nproc", "3"], "-b 2 does not divide among 3 processes (-b is the global batch, each process "
                                 "takes b/3): give a multiple of 3, e.g. 3 or 6"),
    (["--engine", "scratch", "--nproc", "2"], "--engine scratch trains in one process: distributed training "
                                              "(torchrun, --nproc) needs --engine torch"),
    (["--recipe", "article", "--sync-bn", "--nproc", "2"], "--sync-bn with --eval-train-mode would synchronise "
                                                         "BatchNorm while the processes evaluate different shares "
                                                         "of the test set: drop one of them"),
    (["--nproc", "0"], "--nproc 0 is invalid: give the number of processes, e.g. 2"),
])
def test_what_several_processes_refuse_is_said_whole(cli, tmp_path, monkeypatch, args, message):
    from deepdive.training.ddp import launcher

    monkeypatch.setattr(launcher, "_torchrun", lambda *a: pytest.fail("torchrun must not start"))
    result = cli("train", *SYNTH, *args, "--out", tmp_path / "run")
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()


def test_the_setup_agreement_stops_every_process_when_one_failed(monkeypatch):
    """The first collective of a run: each process says whether its setup worked. The other process's flags
    arrive through a stand-in all-reduce; the lowest failing rank reports, the others stay quiet, a process
    that is fine stops with one line naming the failed one, and the agreement is made once."""
    import torch
    import torch.distributed as tdist

    from deepdive.training.ddp.group import PeerFailed, ProcessGroup

    sent, arriving = [], []

    def all_reduce(tensor, *args, **kwargs):
        sent.append(tensor.tolist())
        tensor.add_(arriving.pop(0))

    monkeypatch.setattr(tdist, "all_reduce", all_reduce)

    def group(rank):
        return ProcessGroup(rank, 2, rank, 2, torch.device("cpu"), timeout=60.0)

    def theirs(*flags):
        arriving.append(torch.tensor(flags, dtype=torch.float64))

    fine = group(0)
    theirs(0.0, 1.0)  # process 1 failed
    with pytest.raises(PeerFailed, match="process 1 failed while setting up") as raised:
        fine.agree(None)
    assert sent.pop() == [0.0, 0.0] and getattr(raised.value, "quiet", False)
    fine.agree(None)  # made once: no second collective
    assert not sent and not arriving
    alone = group(1)
    theirs(0.0, 0.0)  # process 1 alone failed: it says its own error
    error = ValueError("no data")
    assert alone.agree(error) is None and sent.pop() == [0.0, 1.0] and not getattr(error, "quiet", False)
    both = group(1)
    theirs(1.0, 0.0)  # processes 0 and 1 failed: 0 says it, 1 stays quiet
    error = ValueError("no data")
    both.agree(error)
    assert getattr(error, "quiet", False) and sent.pop() == [0.0, 1.0]
    happy = group(0)
    theirs(0.0, 0.0)
    assert happy.agree(None) is None and sent.pop() == [0.0, 0.0]
    broken = group(0)
    broken.broken = True  # a group whose collective failed makes no more
    broken.agree(None)
    assert not sent
