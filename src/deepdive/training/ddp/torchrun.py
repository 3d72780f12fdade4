"""Joining a data-parallel run under torchrun: the environment torchrun sets, what such a run refuses, and the
process group this process becomes (``start``: a ``ProcessGroup``, or ``OneProcess`` outside torchrun).

torchrun hands each process its place in environment variables (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, TORCHELASTIC_RESTART_COUNT); ``env_rank`` reads its rank before any group exists
(``training.resume`` locks the run folder in rank 0 alone).
"""
from __future__ import annotations

import logging
import os

from deepdive.config.specs import ENGINE_SPECS
from deepdive.errors import RunFailed, UserError, first_line
from deepdive.training.ddp.group import OneProcess, ProcessGroup, quiet

log = logging.getLogger("deepdive")


# -- the environment torchrun sets -----------------------------------------------------------------------------------
def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if "RANK" in os.environ else 1


def restart_count() -> int:
    """How many times torchrun has restarted this worker group (``--max-restarts``); 0 in a first attempt."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


# -- what a run of several processes refuses -------------------------------------------------------------------------
def check(cfg, world: int) -> None:
    """What a run of ``world`` processes refuses, before any process group exists (``--nproc`` checks it too)."""
    if not ENGINE_SPECS[cfg.engine].distributed:
        raise UserError(f"--engine {cfg.engine} trains in one process: distributed training (torchrun, --nproc) "
                        "needs --engine torch")
    if cfg.batch_size % world:
        lower = max(world, cfg.batch_size - cfg.batch_size % world)
        raise UserError(f"-b {cfg.batch_size} does not divide among {world} processes (-b is the global batch, "
                        f"each process takes b/{world}): give a multiple of {world}, e.g. {lower} or {lower + world}")
    if cfg.sync_bn and cfg.eval_train_mode:
        raise UserError("--sync-bn with --eval-train-mode would synchronise BatchNorm while the processes evaluate "
                        "different shares of the test set: drop one of them")


def threads_per_process(model: str, local_world: int) -> int:
    """The cores of this machine shared among its processes (small models: one thread, as in one process)."""
    from deepdive.training.threads import default_threads

    return max(1, default_threads(model, busy=0) // local_world)


# -- joining the group -----------------------------------------------------------------------------------------------
def start(cfg) -> OneProcess | ProcessGroup:
    """Join the process group torchrun set up (``OneProcess`` outside torchrun, or with one process): gloo on
    the CPU, NCCL on CUDA (one GPU per process, by LOCAL_RANK), collectives timing out after --dist-timeout."""
    world = env_world_size()
    if world <= 1:
        return OneProcess()
    rank = env_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    device = _device(cfg, rank, world, local_rank, local_world)
    if rank:
        log.setLevel(logging.ERROR)  # only rank 0 speaks; errors are every process's own
    rank, world = _join(device, rank, world, cfg.dist_timeout)
    return ProcessGroup(rank, world, local_rank, local_world, device, cfg.dist_timeout)


def _device(cfg, rank: int, world: int, local_rank: int, local_world: int):
    """This process's device: its own GPU on CUDA (``cuda`` then means it everywhere), else the CPU."""
    import torch

    from deepdive.training.engines import resolve_device

    try:
        check(cfg, world)
        cuda = resolve_device(cfg.device) == "cuda"
        if cuda and local_world > torch.cuda.device_count():
            raise UserError(f"{local_world} processes on this node but {torch.cuda.device_count()} GPU(s): start "
                            "one process per GPU (--nproc-per-node), or train on the CPU with --device cpu")
    except UserError as exc:  # the same in every process: rank 0 says it
        raise (quiet(exc) if rank else exc) from None
    if not cuda:
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _join(device, rank: int, world: int, seconds: float) -> tuple[int, int]:
    """Rendezvous with the other processes; (rank, world) as the rendezvous gives them."""
    from datetime import timedelta

    import torch.distributed as tdist

    backend, extra = ("nccl", {"device_id": device}) if device.type == "cuda" else ("gloo", {})
    timeout = timedelta(seconds=seconds)
    try:
        # torchrun's store outlives a restart, and the group's keys (gloo's peer addresses) would be read back
        # from the attempt before (measured: 2 restarts in 4 connected to the dead processes' ports): each
        # attempt keeps its keys under its own prefix.
        store, rank, world = next(tdist.rendezvous("env://", timeout=timeout))
        store = tdist.PrefixStore(f"deepdive/attempt-{restart_count()}", store)
        tdist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout, **extra)
    except Exception as exc:  # noqa: BLE001 - the store, the network: one line, whatever raised it
        detail = first_line(exc, 160)
        raise RunFailed(f"process {rank} could not join the other {world - 1} ({detail}): check the rendezvous "
                        "endpoint and that every node started the same command") from None
    return rank, world
