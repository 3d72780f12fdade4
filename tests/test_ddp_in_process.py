"""Data-parallel training's code that the torchrun launches (test_distributed) run in child processes, run here
in this process: joining the group (a real gloo rendezvous of one process), the launcher's handling of torchrun's
outcomes, the device a process takes, the group's failure messages and its restore, the global-batch layers and
the sharded split. Each function's outcome is compared with a value computed here or with the text the user sees,
word for word - the child processes' runs are invisible to coverage, and so to mutation testing.
"""
import logging
import signal
import socket
from datetime import timedelta
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as tdist

from deepdive.errors import RunFailed, UserError
from deepdive.training.ddp import launcher, torchrun
from deepdive.training.ddp.group import OneProcess, PeerFailed, ProcessGroup, is_comm_error
from deepdive.training.train_state import Stopwatch

JOIN_FIX = "check the rendezvous endpoint and that every node started the same command"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_group():
    """A test that joins a process group leaves it: the next init_process_group must start afresh."""
    if tdist.is_initialized():
        tdist.destroy_process_group()
    yield
    if tdist.is_initialized():
        tdist.destroy_process_group()


def deepdive_errors(caplog):
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "deepdive"]


# -- torchrun._join: the rendezvous and the process group ------------------------------------------------------------
def test_join_makes_a_real_gloo_group_keyed_by_the_restart(monkeypatch, no_group):
    """env:// rendezvous (rank 0 of 1 on a free local port), then a gloo group whose store keeps its keys under
    deepdive/attempt-<TORCHELASTIC_RESTART_COUNT>/, with --dist-timeout as the rendezvous's and the group's
    timeout."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "3")
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    rendezvous, init = tdist.rendezvous, tdist.init_process_group
    asked, stores, joined = [], [], []

    def recorded_rendezvous(url, **kwargs):
        asked.append((url, kwargs))
        for store, rank, world in rendezvous(url, **kwargs):
            stores.append(store)
            yield store, rank, world

    def recorded_init(backend, **kwargs):
        joined.append((backend, kwargs))
        return init(backend, **kwargs)

    monkeypatch.setattr(tdist, "rendezvous", recorded_rendezvous)
    monkeypatch.setattr(tdist, "init_process_group", recorded_init)
    assert torchrun._join(torch.device("cpu"), 0, 1, 42.5) == (0, 1)
    assert tdist.is_initialized() and tdist.get_backend() == "gloo"
    assert (tdist.get_rank(), tdist.get_world_size()) == (0, 1)
    assert asked == [("env://", {"timeout": timedelta(seconds=42.5)})]
    backend, kwargs = joined.pop()
    assert backend == "gloo" and sorted(kwargs) == ["rank", "store", "timeout", "world_size"]
    assert (kwargs["rank"], kwargs["world_size"], kwargs["timeout"]) == (0, 1, timedelta(seconds=42.5))
    store = kwargs["store"]
    assert isinstance(store, tdist.PrefixStore) and store.underlying_store is not None
    store.set("k", b"v")
    assert stores[0].get("deepdive/attempt-3/k") == b"v"
    total = torch.tensor([2.5])
    tdist.all_reduce(total)  # the group works: a sum over one process
    assert total.item() == 2.5


def test_join_on_cuda_asks_nccl_for_this_process_gpu(monkeypatch):
    """On CUDA the group is NCCL's, bound to the process's own GPU (device_id); the rank and world are the
    rendezvous's, whatever the environment said; a first attempt's keys sit under attempt-0."""
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    base, asked, joined = tdist.HashStore(), [], []
    monkeypatch.setattr(tdist, "rendezvous", lambda url, **kwargs: asked.append((url, kwargs)) or iter([(base, 3, 4)]))
    monkeypatch.setattr(tdist, "init_process_group", lambda backend, **kwargs: joined.append((backend, kwargs)))
    device = torch.device("cuda", 1)
    assert torchrun._join(device, 0, 1, 30.0) == (3, 4)
    assert asked == [("env://", {"timeout": timedelta(seconds=30)})]
    backend, kwargs = joined.pop()
    assert backend == "nccl" and sorted(kwargs) == ["device_id", "rank", "store", "timeout", "world_size"]
    assert kwargs["device_id"] == device and isinstance(kwargs["device_id"], torch.device)
    assert (kwargs["rank"], kwargs["world_size"], kwargs["timeout"]) == (3, 4, timedelta(seconds=30))
    kwargs["store"].set("peer", b"1")
    assert base.get("deepdive/attempt-0/peer") == b"1"
    # the CPU: gloo, no device_id
    assert torchrun._join(torch.device("cpu"), 0, 1, 30.0) == (3, 4)
    backend, kwargs = joined.pop()
    assert backend == "gloo" and "device_id" not in kwargs


def fails_to_rendezvous(monkeypatch, error):
    def rendezvous(url, **kwargs):
        raise error
    monkeypatch.setattr(tdist, "rendezvous", rendezvous)
    monkeypatch.setattr(tdist, "init_process_group", lambda *a, **k: pytest.fail("no group without a rendezvous"))


def test_a_failed_rendezvous_is_one_line_naming_the_cause(monkeypatch):
    fails_to_rendezvous(monkeypatch, RuntimeError("connect() timed out. Original timeout was 900000 ms.\nat line 2"))
    with pytest.raises(RunFailed) as raised:
        torchrun._join(torch.device("cpu"), 0, 1, 900.0)
    assert str(raised.value) == ("process 0 could not join the other 0 (connect() timed out. Original timeout was "
                                 "900000 ms.): check the rendezvous endpoint and that every node started the same "
                                 "command")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(RunFailed) as raised:
        torchrun._join(torch.device("cpu"), 2, 5, 900.0)  # the rank and world this process was given
    assert str(raised.value).startswith("process 2 could not join the other 4 (connect() timed out.")
    assert str(raised.value).endswith(f"): {JOIN_FIX}")


def test_a_long_cause_is_cut_at_160_characters(monkeypatch):
    cause = "".join(chr(ord("a") + i % 26) for i in range(300))
    fails_to_rendezvous(monkeypatch, OSError(cause))
    with pytest.raises(RunFailed) as raised:
        torchrun._join(torch.device("cpu"), 1, 3, 10.0)
    assert str(raised.value) == f"process 1 could not join the other 2 ({cause[:160]}): {JOIN_FIX}"


def test_a_failed_group_names_the_rendezvous_rank_and_world(monkeypatch):
    monkeypatch.setattr(tdist, "rendezvous", lambda url, **kwargs: iter([(tdist.HashStore(), 5, 8)]))

    def init(backend, **kwargs):
        raise TimeoutError()  # says nothing: its type's name stands in

    monkeypatch.setattr(tdist, "init_process_group", init)
    with pytest.raises(RunFailed) as raised:
        torchrun._join(torch.device("cpu"), 0, 1, 10.0)
    assert str(raised.value) == f"process 5 could not join the other 7 (TimeoutError): {JOIN_FIX}"


def test_a_real_rendezvous_without_its_endpoint_is_one_line(monkeypatch, no_group):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(RunFailed) as raised:
        torchrun._join(torch.device("cpu"), 0, 1, 5.0)
    message = str(raised.value)
    assert message.startswith("process 0 could not join the other 0 (") and message.endswith(f"): {JOIN_FIX}")
    assert "MASTER_ADDR" in message and "\n" not in message
    assert not tdist.is_initialized()


# -- torchrun._device: this process's device and what it refuses ----------------------------------------------------
def train_config(**changes):
    return SimpleNamespace(**{"engine": "torch", "batch_size": 8, "sync_bn": False, "eval_train_mode": False,
                              "device": "cpu", **changes})


@pytest.fixture
def gpus(monkeypatch):
    """CUDA as torch reports it, set by the test (``gpus(n)``); the devices set (torch.cuda.set_device)."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)

    def have(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        return chosen
    return have


def test_a_process_on_the_cpu_takes_the_cpu(gpus):
    chosen = gpus(0)
    assert torchrun._device(train_config(), 1, 2, 1, 2) == torch.device("cpu")
    assert torchrun._device(train_config(device="auto"), 0, 4, 0, 4) == torch.device("cpu")
    assert chosen == []


def test_a_process_on_cuda_takes_its_local_gpu(gpus):
    chosen = gpus(2)
    assert torchrun._device(train_config(device="cuda"), 3, 4, 1, 2) == torch.device("cuda", 1)
    assert torchrun._device(train_config(device="auto"), 0, 4, 0, 2) == torch.device("cuda", 0)
    assert chosen == [1, 0]


REFUSALS = [
    ({"batch_size": 9}, 2, "-b 9 does not divide among 2 processes (-b is the global batch, each process takes b/2): "
                           "give a multiple of 2, e.g. 8 or 10"),
    ({"engine": "scratch"}, 2, "--engine scratch trains in one process: distributed training (torchrun, --nproc) "
                               "needs --engine torch"),
    ({"sync_bn": True, "eval_train_mode": True}, 2, "--sync-bn with --eval-train-mode would synchronise BatchNorm "
                                                    "while the processes evaluate different shares of the test set: "
                                                    "drop one of them"),
    ({"device": "cuda", "batch_size": 12}, 3, "3 processes on this node but 2 GPU(s): start one process per GPU "
                                              "(--nproc-per-node), or train on the CPU with --device cpu"),
]


@pytest.mark.parametrize("changes, local_world, message", REFUSALS)
def test_what_a_process_refuses_rank_0_says_and_the_others_keep_quiet(gpus, changes, local_world, message):
    chosen = gpus(2)
    cfg = train_config(**changes)
    with pytest.raises(UserError) as raised:
        torchrun._device(cfg, 0, local_world, 0, local_world)
    assert str(raised.value) == message and not getattr(raised.value, "quiet", False)
    assert raised.value.__suppress_context__
    with pytest.raises(UserError) as raised:
        torchrun._device(cfg, 1, local_world, 1, local_world)
    assert str(raised.value) == message and raised.value.quiet is True
    assert chosen == []


def test_cuda_without_a_gpu_is_refused_by_rank_0_alone(gpus):
    gpus(0)
    message = "--device cuda was asked for but no CUDA GPU is available: use --device cpu or auto"
    with pytest.raises(UserError, match="^" + message.replace("-", r"\-") + "$") as raised:
        torchrun._device(train_config(device="cuda"), 0, 2, 0, 2)
    assert not getattr(raised.value, "quiet", False)
    with pytest.raises(UserError) as raised:
        torchrun._device(train_config(device="cuda"), 1, 2, 1, 2)
    assert str(raised.value) == message and raised.value.quiet is True


# -- launcher._torchrun: torchrun's own launcher, in this process ----------------------------------------------------
TORCH_LOGGERS = ("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher")


@pytest.fixture
def torchrun_run(monkeypatch):
    """torchrun's ``run`` replaced: it records the parsed arguments and raises what the test gives it. The loggers
    and OMP_NUM_THREADS the launcher sets are put back afterwards."""
    import torch.distributed.run as trun

    received, raising = [], []

    def run(args):
        received.append(args)
        if raising:
            raise raising.pop()

    monkeypatch.setattr(trun, "run", run)
    monkeypatch.setenv("OMP_NUM_THREADS", "0")  # (recorded, so that the test's value is undone)
    monkeypatch.delenv("OMP_NUM_THREADS")
    loggers = [logging.getLogger(name) for name in (*TORCH_LOGGERS, None)]
    levels = [logger.level for logger in loggers]
    for logger in loggers[:-1]:
        logger.setLevel(logging.NOTSET)
    yield SimpleNamespace(received=received, raising=raising)
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


ARGUMENTS = ["--standalone", "--nproc-per-node", "2", "-m", "deepdive", "train", "-b", "8"]


def test_torchrun_runs_the_command_with_the_threads_given(torchrun_run, monkeypatch):
    import os

    from torch.distributed.run import get_args_parser

    root = logging.getLogger().level
    assert launcher._torchrun(ARGUMENTS, 3) == 0
    args = torchrun_run.received.pop()
    assert (args.standalone, args.nproc_per_node, args.module) == (True, "2", True)
    assert (args.training_script, args.training_script_args) == ("deepdive", ["train", "-b", "8"])
    assert vars(args) == vars(get_args_parser().parse_args(ARGUMENTS))
    assert os.environ["OMP_NUM_THREADS"] == "3"
    assert [logging.getLogger(name).level for name in TORCH_LOGGERS] == [logging.CRITICAL] * 3
    assert logging.getLogger().level == root
    monkeypatch.setenv("OMP_NUM_THREADS", "5")  # the user's own setting stays
    assert launcher._torchrun(ARGUMENTS, 3) == 0
    assert os.environ["OMP_NUM_THREADS"] == "5"


def child_failed(tmp_path, failures: dict):
    """torchrun's ChildFailedError: {rank: (exit code, timestamp)}, the first failure the earliest timestamp."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    made = {}
    for rank, (code, timestamp) in failures.items():
        failure = ProcessFailure(local_rank=rank, pid=4000 + rank, exitcode=code,
                                 error_file=str(tmp_path / f"no-error-file-{rank}.json"))
        failure.timestamp = timestamp  # (no error file: torchrun stamps the current time)
        made[rank] = failure
    return ChildFailedError("deepdive", made)


@pytest.mark.parametrize("failures, code, said", [
    ({0: (3, 10), 1: (1, 20)}, 3, None),  # a worker's own exit code: its message is above
    ({0: (1, 20), 1: (2, 30)}, 1, None),
    ({0: (0, 5)}, 0, None),
    ({0: (1, 20), 2: (-9, 10)}, 137, "process 2 was killed by SIGKILL"),
    ({1: (-15, 7)}, 143, "process 1 was killed by SIGTERM"),
    ({1: (-200, 7)}, 328, "process 1 was killed by 200"),  # not a signal this platform names
], ids=["exit-3", "first-by-time", "exit-0", "signal-9", "signal-15", "signal-200"])  # (ids: mutmut's -k)
def test_a_failed_worker_exit_code_comes_back(torchrun_run, tmp_path, caplog, failures, code, said):
    torchrun_run.raising.append(child_failed(tmp_path, failures))
    with caplog.at_level(logging.INFO, logger="deepdive"):
        assert launcher._torchrun(ARGUMENTS, 1) == code
    expected = [] if said is None else [(logging.ERROR, f"deepdive train: run failed: {said} (out of memory?)")]
    assert deepdive_errors(caplog) == expected


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_torchrun_exits_as_that_signal(torchrun_run, caplog, sig, code):
    from torch.distributed.elastic.multiprocessing.api import SignalException

    torchrun_run.raising.append(SignalException(f"Process {1234} got signal: {sig}", sig))
    with caplog.at_level(logging.INFO, logger="deepdive"):
        assert launcher._torchrun(ARGUMENTS, 1) == code
    assert deepdive_errors(caplog) == []


# -- the process group: failures, the agreement, a restore -----------------------------------------------------------
@pytest.mark.parametrize("error", [
    tdist.DistError("anything"), tdist.DistNetworkError("anything"), tdist.DistBackendError("anything"),
    tdist.DistStoreError("anything"),
    RuntimeError("[pair.cc:534] gloo transport failed"), RuntimeError("NCCL error in: unhandled system error"),
    RuntimeError("Connection reset by peer"), RuntimeError("Connection closed by peer"),
    RuntimeError("ProcessGroup is aborted"),
], ids=repr)
def test_failed_collectives_are_comm_errors(error):
    assert is_comm_error(error) is True


@pytest.mark.parametrize("error", [
    RuntimeError("boom"), RuntimeError(""), RuntimeError("GLOO"), RuntimeError("nccl error"),
    RuntimeError("connection reset by peer"), RuntimeError("connection closed"), RuntimeError("processgroup"),
    ValueError("gloo"), ConnectionResetError("Connection reset by peer"), KeyError("NCCL"),
], ids=repr)
def test_other_errors_are_not_comm_errors(error):
    assert is_comm_error(error) is False


@pytest.mark.parametrize("cause, timeout, detail", [
    ("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.0.0.2] port 4567\n"
     "second line", 45.5, "Connection closed by peer [10.0.0.2] port 4567"),
    ("Timed out waiting 1800000ms for recv operation to complete", 60.0,
     "Timed out waiting 1800000ms for recv operation to complete"),
    ("[" + "p" * 100 + "] " + "".join(chr(ord("a") + i % 26) for i in range(150)), 1800.0,
     "".join(chr(ord("a") + i % 26) for i in range(140))),
    ("", 0.25, "RuntimeError"),
])
def test_a_lost_collective_is_one_quiet_line_said_at_once(caplog, cause, timeout, detail):
    group = ProcessGroup(1, 3, 1, 3, torch.device("cpu"), timeout=timeout)
    assert group.broken is False
    with caplog.at_level(logging.INFO, logger="deepdive"):
        error = group._lost(RuntimeError(cause))
    message = (f"process 1 of 3 lost contact with the others ({detail}): one of them died or did not answer within "
               f"--dist-timeout {timeout:g} s; its own error, if any, is above")
    assert type(error) is RunFailed and str(error) == message and error.quiet is True
    assert group.broken is True
    assert deepdive_errors(caplog) == [(logging.ERROR, f"deepdive train: run failed: {message}")]


def test_the_lost_message_prints_the_timeout_as_given():
    group = ProcessGroup(0, 2, 0, 2, torch.device("cpu"), timeout=60.0)
    assert "within --dist-timeout 60 s;" in str(group._lost(RuntimeError("gloo")))
    assert "(gloo)" in str(group._lost(RuntimeError("gloo")))


def test_a_comm_error_in_the_guard_becomes_the_lost_line(caplog):
    group = ProcessGroup(2, 4, 0, 2, torch.device("cpu"), timeout=30.0)
    with caplog.at_level(logging.INFO, logger="deepdive"), pytest.raises(RunFailed) as raised:
        with group.guard():
            raise RuntimeError("[tcp/pair.cc:1] Connection reset by peer")
    assert str(raised.value).startswith("process 2 of 4 lost contact with the others (Connection reset by peer): ")
    assert raised.value.quiet is True and group.broken is True


@pytest.fixture
def all_reduce(monkeypatch):
    """A stand-in all-reduce: records what this process sends and adds the other processes' flags."""
    sent, arriving = [], []

    def reduce(tensor, *args, **kwargs):
        sent.append(tensor.tolist())
        incoming = arriving.pop(0)
        if isinstance(incoming, BaseException):
            raise incoming
        tensor.add_(torch.tensor(incoming, dtype=torch.float64))

    monkeypatch.setattr(tdist, "all_reduce", reduce)
    return SimpleNamespace(sent=sent, arriving=arriving)


def test_a_failing_process_tells_the_others_at_the_agreement(all_reduce):
    group = ProcessGroup(1, 2, 1, 2, torch.device("cpu"), timeout=60.0)
    all_reduce.arriving.append([1.0, 0.0])  # process 0 failed too: it says its error, this one keeps quiet
    error = ValueError("no data")
    assert group.fail(error) is None
    assert all_reduce.sent == [[0.0, 1.0]] and error.quiet is True and group.agreed
    alone = ProcessGroup(0, 2, 0, 2, torch.device("cpu"), timeout=60.0)
    all_reduce.arriving.append([0.0, 0.0])
    error = ValueError("no data")
    assert alone.fail(error) is None
    assert all_reduce.sent[-1] == [1.0, 0.0] and not getattr(error, "quiet", False)


def test_a_failing_process_whose_peers_are_gone_keeps_its_own_error(all_reduce, caplog):
    group = ProcessGroup(1, 2, 1, 2, torch.device("cpu"), timeout=60.0)
    all_reduce.arriving.append(RuntimeError("Connection reset by peer"))
    error = ValueError("no data")
    with caplog.at_level(logging.INFO, logger="deepdive"):
        assert group.fail(error) is None  # the lost collective's RunFailed is not raised over the failure
    assert group.broken is True and not getattr(error, "quiet", False)
    assert len(deepdive_errors(caplog)) == 1
    group.fail(error)  # a broken group makes no more collectives
    assert all_reduce.arriving == [] and len(all_reduce.sent) == 1


def test_a_peer_failure_stops_a_healthy_process(all_reduce):
    group = ProcessGroup(0, 2, 0, 2, torch.device("cpu"), timeout=60.0)
    all_reduce.arriving.append([0.0, 1.0])
    with pytest.raises(PeerFailed) as raised:
        group.agree(None)
    assert str(raised.value) == "process 1 failed while setting up (its error is above)" and raised.value.quiet


def test_one_process_takes_every_item():
    one = OneProcess()
    assert (one.share(13), one.share(0), one.share(1)) == ((0, 13), (0, 0), (0, 1))


@pytest.fixture
def cuda_rng(monkeypatch):
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, *a, **k: restored.append(state))
    return restored


def test_a_restore_sets_the_group_clock_and_on_cuda_rank_0_generator(cuda_rng):
    watch = Stopwatch(clock=lambda: 100.0, totals={"train": 12.5, "eval": 3.0})
    states = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5, 6], dtype=torch.uint8)]
    on_cuda = ProcessGroup(1, 2, 1, 2, torch.device("cuda", 1), timeout=60.0)
    assert on_cuda.restored({"torch": torch.tensor([9], dtype=torch.uint8), "cuda": states}, watch) is None
    assert on_cuda.seconds == 12.5
    assert len(cuda_rng) == 1 and cuda_rng.pop() is states[0]
    on_cuda.restored({"torch": torch.tensor([9], dtype=torch.uint8)}, watch)  # a checkpoint made on the CPU
    on_cuda.restored({"cuda": []}, watch)
    assert cuda_rng == []
    on_cpu = ProcessGroup(0, 2, 0, 2, torch.device("cpu"), timeout=60.0)
    running = Stopwatch(clock=iter([5.0, 7.25]).__next__, totals={"train": 1.0, "eval": 40.0})
    running.start("train")  # at 5.0; elapsed at 7.25
    on_cpu.restored({"cuda": states}, running)  # a CUDA checkpoint resumed on the CPU: nothing to set
    assert on_cpu.seconds == 3.25 and cuda_rng == []


# -- the global-batch layers and the sharded split -------------------------------------------------------------------
def test_global_batch_dropout_is_made_as_nn_dropout():
    from torch import nn

    from deepdive.training.ddp.layers import GlobalBatch, GlobalBatchDropout

    plain = GlobalBatchDropout()
    assert (plain.p, plain.inplace, plain.global_batch) == (0.5, False, None)
    assert type(plain.inplace) is bool and isinstance(plain, nn.Dropout)
    batch = GlobalBatch()
    given = GlobalBatchDropout(0.25, True, batch)
    assert (given.p, given.inplace, given.global_batch is batch) == (0.25, True, True)
    assert GlobalBatchDropout(p=0.75, global_batch=batch).p == 0.75
    # p and the batch at work: rows 2-4 of a global batch of 6, the mask drawn for all 6 (CPU: bernoulli(1 - p))
    x = torch.arange(1.0, 3 * 4 + 1).view(3, 4)
    torch.manual_seed(11)
    keep = torch.empty(6, 4).bernoulli_(0.75)
    torch.manual_seed(11)
    with batch.step(2, 6):
        y = GlobalBatchDropout(0.25, False, batch)(x)
    assert torch.equal(y, x * (keep / 0.75)[2:5])


def test_a_sharded_split_moves_whole_and_keeps_its_group():
    from deepdive.data.pipeline import Split
    from deepdive.training.ddp.sharding import ShardedSplit

    images = torch.arange(5 * 1 * 2 * 2, dtype=torch.uint8).view(5, 1, 2, 2)
    split = Split(images, torch.tensor([0, 1, 2, 3, 4]))
    group = ProcessGroup(1, 2, 1, 2, torch.device("cpu"), timeout=60.0)
    sharded = ShardedSplit(split, group)
    moved = sharded.to(torch.device("meta"))
    assert type(moved) is ShardedSplit and moved.group is group and moved is not sharded
    assert (moved.split.images.device.type, moved.split.labels.device.type) == ("meta", "meta")
    assert moved.split.images.shape == (5, 1, 2, 2) and len(moved) == 5
    assert sharded.split.images.device.type == "cpu"
    assert torch.equal(sharded.head(3), images[:3]) and torch.equal(sharded.head(0), images[:0])
