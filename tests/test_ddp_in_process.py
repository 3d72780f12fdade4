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


def test_a_sharded_split_steps_through_its_share_of_each_global_batch():
    """Rank 1 of 2 takes the second part of each global batch of the order (the first n mod 2 go to rank 0); with
    no order the split's own order; from ``start_batch`` on."""
    from deepdive.data.pipeline import Split
    from deepdive.training.ddp.sharding import ShardedSplit

    images = torch.arange(7 * 1 * 2 * 2, dtype=torch.uint8).view(7, 1, 2, 2)
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2])
    sharded = ShardedSplit(Split(images, labels), ProcessGroup(1, 2, 1, 2, torch.device("cpu"), timeout=60.0))

    def taken(batches):
        return [(im.tolist(), lab.tolist(), *(rest[0].tolist() for rest in [extra] if extra))
                for im, lab, *extra in batches]
    # global batches of 3: [0 1 2] [3 4 5] [6]; rank 1 takes [2], [5], nothing
    expected = [[2], [5], []]
    assert taken(sharded.batches(3, None, 0, True)) == [(images[i].tolist(), labels[i].tolist(), i) for i in expected]
    assert taken(sharded.batches(3, None, 1, False)) == [(images[i].tolist(), labels[i].tolist())
                                                        for i in expected[1:]]
    order = torch.tensor([6, 5, 4, 3, 2, 1, 0])
    # global batches of 4 in this order: [6 5 4 3] [2 1 0]; rank 1 takes [4 3], [0]
    assert taken(sharded.batches(4, order, 0, True)) == [(images[[4, 3]].tolist(), labels[[4, 3]].tolist(), [4, 3]),
                                                         (images[[0]].tolist(), labels[[0]].tolist(), [0])]


# -- launcher.launch: what --nproc checks and hands torchrun -----------------------------------------------------------
@pytest.fixture
def launched(monkeypatch):
    """launcher._torchrun replaced (it records its arguments and threads, returns 7); a machine of 16 idle cores."""
    import deepdive.training.threads as threads

    calls = []
    monkeypatch.setattr(launcher, "_torchrun", lambda arguments, n: calls.append((arguments, n)) or 7)
    monkeypatch.setattr(threads, "available_cores", lambda: 16)
    monkeypatch.delenv("RANK", raising=False)
    return calls


def test_nproc_under_torchrun_is_refused(launched, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError) as raised:
        launcher.launch(["train", "--nproc", "2"], 2, {}, None, None, False, False)
    assert str(raised.value) == "--nproc starts torchrun itself: under torchrun, drop --nproc"
    assert launched == []


def test_nproc_takes_the_config_file_and_its_threads(launched, tmp_path):
    """Values of a --config file count (its --threads is what each process gets); without --threads a small
    model's processes take one thread each, a larger model's the cores shared among them."""
    import json

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": "simplenet", "dataset": "synthetic", "threads": 3, "batch_size": 8}))
    out = str(tmp_path / "run")
    argv = ["train", "--config", str(config), "--nproc", "2", "--out", out]
    assert launcher.launch(argv, 2, {"out": out}, str(config), None, False, False) == 7
    head = ["--standalone", "--nproc-per-node", "2", "-m", "deepdive"]
    assert launched.pop() == ([*head, "train", "--config", str(config), "--out", out], 3)
    config.write_text(json.dumps({"model": "simplenet", "dataset": "synthetic", "batch_size": 9}))
    with pytest.raises(UserError, match=r"^-b 9 does not divide among 2 processes"):  # the file's -b is checked
        launcher.launch(argv, 2, {"out": out}, str(config), None, False, False)
    argv = ["train", "--model", "simplenet", "--nproc", "2", "--out", out]
    assert launcher.launch(argv, 2, {"model": "simplenet", "out": out}, None, None, False, False) == 7
    assert launched.pop() == ([*head, "train", "--model", "simplenet", "--out", out], 1)  # small: one thread
    argv = ["train", "--model", "article-cnn", "--nproc", "2", "--out", out]
    assert launcher.launch(argv, 2, {"model": "article-cnn", "out": out}, None, None, False, False) == 7
    assert launched.pop() == ([*head, "train", "--model", "article-cnn", "--out", out], 16 // 2)


def test_nproc_honours_force_and_overwrite(launched, cli, tmp_path):
    """A resume with changed flags goes on with --force; an existing run at --out is replaced with --overwrite
    (checked only: nothing is written before the processes start)."""
    from conftest import SYNTH

    out = tmp_path / "run"
    assert cli("train", *SYNTH, "--limit-train", "16", "--limit-test", "8", "-b", "8", "--epochs", "1",
               "--out", out).code == 0
    before = sorted(p.name for p in out.iterdir())
    assert launcher.launch(["train", "--resume", str(out), "--epochs", "2", "--force", "--nproc", "1"], 1,
                           {"epochs": 2}, None, str(out), True, False) is None
    with pytest.raises(UserError, match=r"^--epochs 2 differs from the run's 1"):
        launcher.launch(["train", "--resume", str(out), "--epochs", "2", "--nproc", "1"], 1, {"epochs": 2}, None,
                        str(out), False, False)
    argv = ["train", *SYNTH, "--out", str(out), "--overwrite", "--nproc", "2"]
    flags = {"dataset": "synthetic", "synthetic_shape": [1, 8, 8], "synthetic_classes": 4, "out": str(out)}
    assert launcher.launch(argv, 2, flags, None, None, False, True) == 7
    assert launched.pop()[0][5:] == ["train", *SYNTH, "--out", str(out), "--overwrite"]
    with pytest.raises(UserError) as raised:
        launcher.launch(argv, 2, flags, None, None, False, False)
    assert str(raised.value) == f"output folder {out} already exists: choose another --out or add --overwrite"
    assert sorted(p.name for p in out.iterdir()) == before and launched == []


# -- torchrun.threads_per_process and check ---------------------------------------------------------------------------
def test_each_process_takes_its_share_of_all_cores(monkeypatch):
    """The machine's cores divided among the node's processes, whatever other programs keep busy (the processes
    of the run itself would count as busy once started); a small model's processes one thread each."""
    import deepdive.training.threads as threads

    monkeypatch.setattr(threads, "available_cores", lambda: 16)
    monkeypatch.setattr(threads, "busy_cores", lambda *a, **k: 5)
    shares = {n: torchrun.threads_per_process("article-cnn", n) for n in (1, 2, 3, 5, 16, 32)}
    assert shares == {1: 16, 2: 8, 3: 5, 5: 3, 16: 1, 32: 1} and all(type(v) is int for v in shares.values())
    assert [torchrun.threads_per_process("simplenet", n) for n in (1, 2)] == [1, 1]


def test_sync_bn_or_eval_train_mode_alone_is_accepted():
    assert torchrun.check(train_config(sync_bn=True), 2) is None
    assert torchrun.check(train_config(eval_train_mode=True), 2) is None


# -- layers.CpuSyncBatchNorm / SyncNorm: BatchNorm over the global batch on the CPU ------------------------------------
@pytest.fixture
def peer(monkeypatch):
    """torch.distributed as rank 0 of 2 sees it: each all_reduce adds the other process's tensor, which the test
    appends to the returned list beforehand (computed here from the other process's share)."""
    sent = []

    def all_reduce(tensor, *args, **kwargs):
        other = sent.pop(0)
        assert other.shape == tensor.shape and tensor.dtype == torch.float64
        tensor.add_(other)
    monkeypatch.setattr(tdist, "is_initialized", lambda: True)
    monkeypatch.setattr(tdist, "get_world_size", lambda *a, **k: 2)
    monkeypatch.setattr(tdist, "all_reduce", all_reduce)
    return sent


def global_batch_norm(x, theirs, grad, grad_theirs, peer, **options):
    """nn.BatchNorm over both processes' rows in float64 (running statistics from 0.5 and 2.0), its output and
    gradients; the other process's sums handed to ``peer``: Σx, Σx², its count, then Σ∂y, Σ∂y·x̂."""
    from torch import nn

    dims = [0, *range(2, x.dim())]
    whole = torch.cat([x, theirs]).double().requires_grad_()
    reference = (nn.BatchNorm2d if x.dim() == 4 else nn.BatchNorm1d)(x.shape[1], **options).double()
    reference.running_mean.fill_(0.5)
    reference.running_var.fill_(2.0)
    if reference.affine:
        with torch.no_grad():
            reference.weight.copy_(torch.linspace(0.5, 1.5, x.shape[1]))
            reference.bias.copy_(torch.linspace(-1.0, 1.0, x.shape[1]))
    y = reference(whole)
    (y * torch.cat([grad, grad_theirs]).double()).sum().backward()
    mean = whole.detach().mean(dims, keepdim=True)
    xhat = (whole.detach() - mean) / (whole.detach().var(dims, unbiased=False, keepdim=True) + 1e-5).sqrt()
    t = theirs.double()
    peer += [torch.cat([t.sum(dims), (t * t).sum(dims), torch.tensor([t.numel() / t.shape[1]], dtype=torch.float64)]),
             torch.cat([grad_theirs.double().sum(dims), (grad_theirs.double() * xhat[len(x):]).sum(dims)])]
    return reference, y[:len(x)], whole.grad[:len(x)], xhat[:len(x)]


def sync_norm_layer(channels, dtype=torch.float32, **options):
    from deepdive.training.ddp.layers import CpuSyncBatchNorm

    layer = CpuSyncBatchNorm(channels, **options).to(dtype)
    layer.running_mean.fill_(0.5)
    layer.running_var.fill_(2.0)
    if layer.affine:
        with torch.no_grad():
            layer.weight.copy_(torch.linspace(0.5, 1.5, channels))
            layer.bias.copy_(torch.linspace(-1.0, 1.0, channels))
    return layer.train()


@pytest.mark.parametrize("dtype, momentum", [(torch.float32, 0.3), (torch.float64, 0.1), (torch.float32, None)])
def test_sync_norm_is_batch_norm_over_the_global_batch(peer, dtype, momentum):
    """Output, input gradient and running statistics as BatchNorm over both processes' rows (4 + 2 images);
    the affine parameters' gradients this process's own sums (DDP averages them); all in the input's dtype."""
    g = torch.Generator().manual_seed(5)
    x, theirs = torch.randn(4, 3, 2, 2, generator=g), torch.randn(2, 3, 2, 2, generator=g) * 2 + 1
    grad, grad_theirs = torch.randn(4, 3, 2, 2, generator=g), torch.randn(2, 3, 2, 2, generator=g)
    reference, y_ref, dx_ref, xhat = global_batch_norm(x, theirs, grad, grad_theirs, peer, momentum=momentum)
    layer = sync_norm_layer(3, dtype, momentum=momentum)
    mine = x.to(dtype).requires_grad_()
    y = layer(mine)
    (y * grad.to(dtype)).sum().backward()
    assert peer == []  # both sums were all-reduced
    assert y.dtype == dtype and mine.grad.dtype == dtype and layer.weight.grad.dtype == dtype
    close = dict(rtol=0, atol=1e-5)
    assert torch.allclose(y.double(), y_ref.detach(), **close)
    assert torch.allclose(mine.grad.double(), dx_ref, **close)
    assert torch.allclose(layer.weight.grad.double(), (grad.double() * xhat).sum((0, 2, 3)), **close)
    assert torch.allclose(layer.bias.grad.double(), grad.double().sum((0, 2, 3)), **close)
    assert torch.allclose(layer.running_mean.double(), reference.running_mean, **close)
    assert torch.allclose(layer.running_var.double(), reference.running_var, **close)
    assert layer.num_batches_tracked.item() == reference.num_batches_tracked.item() == 1


def test_sync_norm_without_affine_parameters_of_two_rows(peer):
    """No γ, β; one row here and one there: the running variance is the unbiased one of two values."""
    x, theirs = torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([[3.0, 2.0, 0.25]])
    grad, grad_theirs = torch.tensor([[0.5, 1.0, -1.0]]), torch.tensor([[2.0, -1.0, 0.25]])
    reference, y_ref, dx_ref, _ = global_batch_norm(x, theirs, grad, grad_theirs, peer, affine=False)
    layer = sync_norm_layer(3, affine=False)
    mine = x.clone().requires_grad_()
    y = layer(mine)
    (y * grad).sum().backward()
    assert peer == []
    close = dict(rtol=0, atol=1e-5)
    assert torch.allclose(y.double(), y_ref.detach(), **close) and torch.allclose(mine.grad.double(), dx_ref, **close)
    assert torch.allclose(layer.running_mean.double(), reference.running_mean, **close)
    expected_var = 0.9 * 2.0 + 0.1 * torch.tensor([2.0, 8.0, 0.03125])  # (a − b)² / 2 of each channel's two values
    assert torch.allclose(layer.running_var, expected_var, **close)
    assert torch.allclose(reference.running_var.float(), expected_var, **close)


def test_sync_norm_with_running_statistics_turned_off_keeps_them(peer):
    """track_running_stats set False after construction (the buffers stay): batch statistics are used and the
    buffers, the batch count included, are left as they were - as nn.BatchNorm does."""
    g = torch.Generator().manual_seed(7)
    x, theirs = torch.randn(3, 2, 2, 2, generator=g), torch.randn(5, 2, 2, 2, generator=g)
    grad, grad_theirs = torch.randn(3, 2, 2, 2, generator=g), torch.randn(5, 2, 2, 2, generator=g)
    reference, y_ref, dx_ref, _ = global_batch_norm(x, theirs, grad, grad_theirs, peer)
    layer = sync_norm_layer(2)
    layer.track_running_stats = False
    mine = x.clone().requires_grad_()
    y = layer(mine)
    (y * grad).sum().backward()
    assert torch.allclose(y.double(), y_ref.detach(), rtol=0, atol=1e-5)
    assert torch.allclose(mine.grad.double(), dx_ref, rtol=0, atol=1e-5)
    assert torch.equal(layer.running_mean, torch.full((2,), 0.5))
    assert torch.equal(layer.running_var, torch.full((2,), 2.0))
    assert layer.num_batches_tracked.item() == 0


def test_one_process_sync_norm_is_plain_batch_norm(monkeypatch):
    """In a group of one (and outside any group) the layer is nn.BatchNorm itself: no collective, the same
    numbers bit for bit; it takes (N, C) and (N, C, H, W) input and names the dimensions of any other."""
    from torch import nn

    def no_collective(*args, **kwargs):
        raise AssertionError("a group of one made a collective")
    monkeypatch.setattr(tdist, "all_reduce", no_collective)
    g = torch.Generator().manual_seed(3)
    for grouped in (True, False):
        monkeypatch.setattr(tdist, "is_initialized", lambda: grouped)
        monkeypatch.setattr(tdist, "get_world_size", lambda *a, **k: 1)
        for x in (torch.randn(5, 3, generator=g), torch.randn(4, 3, 2, 2, generator=g)):
            layer, plain = sync_norm_layer(3), (nn.BatchNorm1d if x.dim() == 2 else nn.BatchNorm2d)(3)
            plain.load_state_dict(layer.state_dict())
            assert torch.equal(layer(x), plain(x))
            assert torch.equal(layer.running_mean, plain.running_mean)
            assert torch.equal(layer.running_var, plain.running_var)
        with pytest.raises(ValueError) as raised:
            sync_norm_layer(3)(torch.randn(3, generator=g))
        assert str(raised.value) == "expected at least 2-D input (got 1-D)"


# -- layers.GlobalBatchDropout at work on the CPU ----------------------------------------------------------------------
def global_dropout(p, x, rows=None):
    from deepdive.training.ddp.layers import GlobalBatch, GlobalBatchDropout

    batch = GlobalBatch()
    layer = GlobalBatchDropout(p, False, batch).train()
    if rows is None:
        return layer(x)
    with batch.step(*rows):
        return layer(x)


def test_global_batch_dropout_draws_in_the_input_layout_dtype_and_device():
    """Rows [1, 3) of a global batch of 5: the mask drawn for all 5 in the input's memory layout (a channels-last
    input gets a channels-last mask: the same images keep the same values in either layout), dtype and device."""
    x = torch.arange(1.0, 2 * 3 * 2 * 2 + 1).view(2, 3, 2, 2)
    torch.manual_seed(4)
    keep = torch.empty(5, 3, 2, 2).bernoulli_(0.7)
    torch.manual_seed(4)
    assert torch.equal(global_dropout(0.3, x, (1, 5)), x * (keep / 0.7)[1:3])
    torch.manual_seed(4)
    keep_last = torch.empty(5, 3, 2, 2).contiguous(memory_format=torch.channels_last).bernoulli_(0.7)
    assert not torch.equal(keep_last, keep)  # (else the layouts would not be told apart)
    torch.manual_seed(4)
    y = global_dropout(0.3, x.contiguous(memory_format=torch.channels_last), (1, 5))
    assert torch.equal(y, x * (keep_last / 0.7)[1:3])
    double = x.double()
    torch.manual_seed(4)
    keep = torch.empty(5, 3, 2, 2, dtype=torch.float64).bernoulli_(0.7)
    torch.manual_seed(4)
    y = global_dropout(0.3, double, (1, 5))
    assert y.dtype == torch.float64 and torch.equal(y, double * (keep / 0.7)[1:3])
    on_meta = global_dropout(0.3, torch.ones(2, 3, device="meta"), (0, 4))
    assert on_meta.device.type == "meta" and on_meta.shape == (2, 3)


def test_global_batch_dropout_of_vectors_and_of_the_edge_rates():
    """A 1-D input is a batch of numbers (its mask drawn for the global batch); a 0-D input, p 0 and p 1, and a
    layer outside a step, are plain dropout (p 0 and 1 draw nothing: the generator stays where it was)."""
    import torch.nn.functional as F

    v = torch.arange(1.0, 4.0)
    torch.manual_seed(6)
    keep = torch.empty(7).bernoulli_(0.5)
    torch.manual_seed(6)
    assert torch.equal(global_dropout(0.5, v, (2, 7)), v * (keep / 0.5)[2:5])
    for rows in ((0, 2), None):
        torch.manual_seed(6)
        expected = F.dropout(torch.tensor(3.0), 0.5, True)
        torch.manual_seed(6)
        assert torch.equal(global_dropout(0.5, torch.tensor(3.0), rows), expected)
    x = torch.arange(1.0, 7.0).view(3, 2)
    torch.manual_seed(6)
    expected = F.dropout(x, 0.5, True)
    torch.manual_seed(6)
    assert torch.equal(global_dropout(0.5, x), expected)  # no step: its own mask
    from deepdive.training.ddp.layers import GlobalBatchDropout
    torch.manual_seed(6)
    assert torch.equal(GlobalBatchDropout(0.5).train()(x), expected)  # no GlobalBatch at all
    for p, rows in ((0.0, (1, 5)), (1.0, (1, 5)), (0.0, None), (1.0, None)):
        before = torch.get_rng_state()
        y = global_dropout(p, x, rows)
        assert torch.equal(y, x if p == 0 else torch.zeros_like(x)) and torch.equal(torch.get_rng_state(), before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA mask needs a GPU")
def test_global_batch_dropout_on_cuda_keeps_its_rows_of_the_fused_kernel_mask():
    """On CUDA the mask is the fused dropout kernel's (``torch.native_dropout``) for the global batch's shape."""
    x = torch.arange(1.0, 2 * 3 * 4 + 1, device="cuda").view(2, 3, 4)
    torch.manual_seed(9)
    keep = torch.native_dropout(torch.ones(5, 3, 4, device="cuda"), 0.3, True)[1]
    torch.manual_seed(9)
    y = global_dropout(0.3, x, (1, 5))
    assert y.dtype == x.dtype and torch.equal(y, x * keep[1:3].to(x.dtype) * (1.0 / (1 - 0.3)))
    assert 0 < int(keep[1:3].sum()) < keep[1:3].numel()  # (a mask that drops some values and keeps others)


# -- ProcessGroup: the step's agreement, the loss weight, the clock, adopting the model and wrapping it ----------------
def test_the_step_agreement_sums_losses_counts_signals_and_rank_0_clock(peer):
    """One all-reduce of [Σloss, images, SIGINT?, SIGTERM?, rank 0's clock]; an empty share adds nothing (its mean
    loss is NaN); SIGTERM wins over SIGINT; the clock is rank 0's alone."""
    import math as m

    rank1 = ProcessGroup(1, 2, 1, 2, torch.device("cpu"), timeout=60.0)
    assert rank1.train_seconds(None) == 0.0  # before the first step
    peer.append(torch.tensor([1.25, 5.0, 1.0, 0.0, 12.5], dtype=torch.float64))  # rank 0: 5 images, SIGINT
    assert rank1.agree_step(0.5, 3, None, 99.0) == (2.75 / 8, signal.SIGINT)
    assert rank1.seconds == 12.5 and rank1.train_seconds(None) == 12.5
    peer.append(torch.tensor([1.25, 5.0, 0.0, 0.0, 20.0], dtype=torch.float64))
    assert rank1.agree_step(m.nan, 0, signal.SIGTERM, 99.0) == (0.25, signal.SIGTERM)
    assert rank1.seconds == 20.0
    rank0 = ProcessGroup(0, 2, 0, 2, torch.device("cpu"), timeout=60.0)
    peer.append(torch.tensor([1.0, 4.0, 1.0, 1.0, 0.0], dtype=torch.float64))
    assert rank0.agree_step(0.5, 4, None, 7.5) == (3.0 / 8, signal.SIGTERM)
    assert rank0.seconds == 7.5
    peer.append(torch.tensor([1.0, 4.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    assert rank0.agree_step(0.5, 4, None, 8.5) == (3.0 / 8, None)


def test_a_share_loss_is_weighed_by_its_part_of_the_global_batch():
    group = ProcessGroup(1, 4, 1, 4, torch.device("cpu"), timeout=60.0)
    rows = group.rows(3, 10)  # shares of 10 among 4: 3 3 2 2
    assert rows == (3, 3, 10)
    assert group.weigh(2.0, rows) == 2.4 and group.weigh(torch.tensor(5.0), rows).item() == pytest.approx(6.0)


def test_a_failed_sum_is_the_lost_line(monkeypatch, caplog):
    def all_reduce(tensor, *args, **kwargs):
        raise RuntimeError("[pair.cc:1] Connection closed by peer")
    monkeypatch.setattr(tdist, "all_reduce", all_reduce)
    group = ProcessGroup(1, 2, 1, 2, torch.device("cpu"), timeout=30.0)
    with caplog.at_level(logging.INFO, logger="deepdive"), pytest.raises(RunFailed) as raised:
        group.sum([1.0, 2.0])
    assert str(raised.value) == ("process 1 of 2 lost contact with the others (Connection closed by peer): one of "
                                 "them died or did not answer within --dist-timeout 30 s; its own error, if any, "
                                 "is above")


def adoption(device, sync_bn=True, test=None):
    from torch import nn

    from deepdive.data.pipeline import Split

    split = Split(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    group = ProcessGroup(0, 2, 0, 2, device, timeout=60.0)
    bundle = SimpleNamespace(train=split, test=test or split, val=None)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Dropout(0.5))
    group.adopt(SimpleNamespace(sync_bn=sync_bn), bundle, model)
    return group, bundle, model


def test_adopting_shards_the_training_split_and_turns_the_layers_global():
    from torch import nn

    from deepdive.training.ddp.layers import CpuSyncBatchNorm, GlobalBatchDropout
    from deepdive.training.ddp.sharding import STREAMED, ShardedSplit

    group, bundle, model = adoption(torch.device("cpu"))
    assert type(bundle.train) is ShardedSplit and bundle.train.group is group
    assert type(model[1]) is CpuSyncBatchNorm and type(model[2]) is GlobalBatchDropout
    assert model[2].global_batch is group.batch
    _, _, model = adoption(torch.device("cuda", 0))  # (only the class changes: no GPU is needed)
    assert type(model[1]) is nn.SyncBatchNorm
    _, _, model = adoption(torch.device("cpu"), sync_bn=False)
    assert type(model[1]) is nn.BatchNorm2d and type(model[2]) is GlobalBatchDropout
    with pytest.raises(UserError) as raised:
        adoption(torch.device("cpu"), test=SimpleNamespace(images=None))  # a streamed test split
    assert str(raised.value) == STREAMED


@pytest.fixture
def ddp(monkeypatch):
    """torch's DistributedDataParallel replaced by a recorder of what it wraps (raising what the test gives)."""
    import torch.nn.parallel

    made, raising = [], []

    class Wrapped(SimpleNamespace):
        def __init__(self, model, device_ids=None):
            if raising:
                raise raising.pop()
            super().__init__(module=model, device_ids=device_ids,
                             params=[p for p in model.parameters() if p.requires_grad])
            made.append(self)
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", Wrapped)
    return SimpleNamespace(made=made, raising=raising)


def test_the_ddp_wrapper_is_made_again_only_when_the_trainable_parameters_change(ddp):
    from torch import nn

    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    group = ProcessGroup(0, 2, 0, 2, torch.device("cpu"), timeout=60.0)
    first = group.wrap(model)
    assert first.module is model and first.device_ids is None and group.wrap(model) is first
    model[0].requires_grad_(False)
    second = group.wrap(model)
    assert second is not first and second.params == list(model[1].parameters())
    model[0].requires_grad_(True)
    model[1].requires_grad_(False)  # as many trainable parameters, other ones
    third = group.wrap(model)
    assert third is not second and third.params == list(model[0].parameters()) and group.wrap(model) is third
    assert len(ddp.made) == 3
    on_cuda = ProcessGroup(1, 2, 1, 2, torch.device("cuda", 1), timeout=60.0)
    assert on_cuda.wrap(model).device_ids == [1]


def test_a_ddp_wrapper_that_fails_to_reach_the_others_is_the_lost_line(ddp):
    from torch import nn

    group = ProcessGroup(1, 2, 1, 2, torch.device("cpu"), timeout=60.0)
    ddp.raising.append(RuntimeError("[pair.cc:1] Connection reset by peer"))
    with pytest.raises(RunFailed) as raised:
        group.wrap(nn.Linear(2, 2))
    assert str(raised.value).startswith("process 1 of 2 lost contact with the others (Connection reset by peer): ")
    ddp.raising.append(RuntimeError("something else"))
    with pytest.raises(RuntimeError, match="^something else$"):
        ProcessGroup(1, 2, 1, 2, torch.device("cpu"), timeout=60.0).wrap(nn.Linear(2, 2))
