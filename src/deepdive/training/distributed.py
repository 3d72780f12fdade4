"""Data-parallel training on PyTorch's own distributed engine: torchrun + DistributedDataParallel.

torchrun starts the processes and their rendezvous (one node: ``--standalone``; many: the c10d
rendezvous), restarts them under ``--max-restarts``, and hands each its place in environment
variables (RANK, WORLD_SIZE, LOCAL_RANK, TORCHELASTIC_RESTART_COUNT). Everything deepdive does
with them is here; the loop (train/loop.py) only offers a few seams a subclass fills.

**Exactly the single-process run, split.** With W processes and the global batch B (``-b``),
step k of an epoch takes the same B images of the epoch's permutation as one process would;
process r takes a contiguous share n_r of them (sizes differ by at most one, so a final partial
batch of n images is split as evenly as it can be). Each process scales its mean loss by
W·n_r/n, and DDP averages gradients over the W processes:

    (1/W) Σ_r (W·n_r/n) ∇(1/n_r Σ_{i∈r} ℓ_i)  =  ∇(1/n Σ_i ℓ_i)

the single-process gradient, up to the order of float32 additions. Random numbers are drawn
for the whole global batch on every process, which keeps its own rows: the augmenter's flips and
crops, and dropout's masks (``GlobalBatchDropout``: on the CPU the very masks one process draws,
bit for bit), so every generator moves as the single process's does and the run does not depend
on how many processes share it. BatchNorm normalizes each process's share unless ``--sync-bn``
(statistics of the global batch: torch's SyncBatchNorm on CUDA, ``CpuSyncBatchNorm`` on the CPU).

**Metrics are global.** Evaluation splits a test set into contiguous shares, no image twice and
none padded in, and adds (loss sum, correct, count) over all processes. The training loss, the
stop signals and rank 0's clock travel in one small all-reduce per step, so every process takes
the same decisions (divergence, SIGINT/SIGTERM, --time-budget) at the same step. Only rank 0
logs, writes the run folder and its checkpoints; the state it saves holds no rank, so a run
resumes with any number of processes.

**Failure.** Before the first collective every process reports whether its setup worked
(``Dist.agree``); a process that dies or hangs later makes the others' collectives fail, at once
(gloo sees the socket close) or after ``--dist-timeout`` seconds, and they end with one clear
line. A worker torchrun restarts resumes the run folder at ``--out`` (``restarted_run``).
"""
from __future__ import annotations

import logging
import math
import os
import signal
from dataclasses import dataclass
from typing import Any

from deepdive.errors import Interrupted, RunFailed, UserError
from deepdive.storage.runs import RunDir
from deepdive.training.loop import Trainer

log = logging.getLogger("deepdive")


# -- the environment torchrun sets ---------------------------------------------------------------------------------
def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if "RANK" in os.environ else 1


def restart_count() -> int:
    """How many times torchrun has restarted this worker group (``--max-restarts``); 0 in a first attempt."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def quiet(exc: BaseException) -> BaseException:
    """Mark an error that another process reports for all: the CLI then prints nothing for it."""
    exc.quiet = True  # type: ignore[attr-defined]
    return exc


class PeerFailed(RunFailed):
    """Another process failed; its own message says why."""


def check(cfg, world: int) -> None:
    """What a run of ``world`` processes refuses, before any process group exists (``--nproc`` checks it too)."""
    if cfg.engine == "scratch":
        raise UserError("--engine scratch trains in one process: distributed training (torchrun, --nproc) needs "
                        "--engine torch")
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


# -- the process group ------------------------------------------------------------------------------------------------
@dataclass
class Dist:
    """This process's place in the run, and the few collectives deepdive itself makes."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    device: Any  # torch.device the collectives' tensors live on
    timeout: float
    agreed: bool = False  # every process has reported its setup (the first collective)
    broken: bool = False  # a collective failed: the group cannot be used any more

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> tuple[int, int]:
        """This process's [lo, hi) of n items: contiguous shares in rank order, the first n mod W one larger."""
        base, extra = divmod(n, self.world)
        lo = self.rank * base + min(self.rank, extra)
        return lo, lo + base + (1 if self.rank < extra else 0)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over all processes (float64: counts stay exact, sums as precise as one process's)."""
        import torch
        import torch.distributed as tdist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        try:
            tdist.all_reduce(tensor)
        except RuntimeError as exc:
            raise self.lost(exc) from None
        return tensor.tolist()

    def agree(self, failure: BaseException | None) -> None:
        """Every process says whether its setup worked; one that failed stops all of them here, before rank 0
        writes a byte and before anyone waits in a collective a failed process will never join. The first
        collective of the run, made once; the lowest failing rank reports its error, the others stay quiet."""
        if self.agreed or self.broken:
            return
        self.agreed = True
        flags = [0.0] * self.world
        flags[self.rank] = 0.0 if failure is None else 1.0
        failed = [r for r, f in enumerate(self.sum(flags)) if f]
        if not failed:
            return
        if failure is not None:
            if failed[0] != self.rank:
                quiet(failure)
            return  # the caller raises its own error
        raise quiet(PeerFailed(f"process {failed[0]} failed while setting up (its error is above)"))

    def fail(self, failure: BaseException) -> None:
        """This process failed: tell the others at the agreement (if it is still ahead), then let ``failure``
        propagate; when they are gone already, this process's own error is the one to tell."""
        try:
            self.agree(failure)
        except RunFailed:
            pass

    def lost(self, exc: BaseException) -> RunFailed:
        """A collective failed: another process died or stopped answering. Said at once (torchrun may stop this
        process right after), returned as a quiet RunFailed for the caller to raise."""
        self.broken = True
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        detail = detail.split("] ", 1)[-1][:140]  # gloo prefixes its source path
        message = (f"process {self.rank} of {self.world} lost contact with the others ({detail}): one of them "
                   f"died or did not answer within --dist-timeout {self.timeout:g} s; its own error, if any, is "
                   "above")
        log.error("deepdive train: run failed: %s", message)
        return quiet(RunFailed(message))  # type: ignore[return-value]

    def close(self) -> None:
        """Leave the group. DDP's reducer holds the group and sits in reference cycles: collected now, not at
        interpreter exit, where destroying the group's threads aborts the process."""
        import gc

        import torch.distributed as tdist

        gc.collect()
        if tdist.is_initialized():
            tdist.destroy_process_group()

    def trainer(self, *args, **kwargs) -> "DistributedTrainer":
        return DistributedTrainer(self, *args, **kwargs)


def start(cfg) -> Dist | None:
    """Join the process group torchrun set up (None outside torchrun, or with one process): gloo on the
    CPU, NCCL on CUDA (one GPU per process, by LOCAL_RANK), collectives timing out after --dist-timeout."""
    from datetime import timedelta

    world = env_world_size()
    if world <= 1:
        return None
    import torch
    import torch.distributed as tdist

    from deepdive.training.engines import resolve_device

    rank = env_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    try:
        check(cfg, world)
        cuda = resolve_device(cfg.device) == "cuda"
        if cuda and local_world > torch.cuda.device_count():
            raise UserError(f"{local_world} processes on this node but {torch.cuda.device_count()} GPU(s): start "
                            "one process per GPU (--nproc-per-node), or train on the CPU with --device cpu")
    except UserError as exc:  # the same in every process: rank 0 says it
        raise (quiet(exc) if rank else exc) from None
    if cuda:
        torch.cuda.set_device(local_rank)  # "cuda" now means this process's GPU, everywhere
        device = torch.device("cuda", local_rank)
        backend, extra = "nccl", {"device_id": device}
    else:
        device, backend, extra = torch.device("cpu"), "gloo", {}
    if rank:
        log.setLevel(logging.ERROR)  # only rank 0 speaks; errors are every process's own
    timeout = timedelta(seconds=cfg.dist_timeout)
    try:
        # torchrun's store outlives a restart, and the group's keys (gloo's peer addresses) would be read back
        # from the attempt before (measured: 2 restarts in 4 connected to the dead processes' ports): each
        # attempt keeps its keys under its own prefix.
        store, rank, world = next(tdist.rendezvous("env://", timeout=timeout))
        store = tdist.PrefixStore(f"deepdive/attempt-{restart_count()}", store)
        tdist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout, **extra)
    except Exception as exc:  # noqa: BLE001 - the store, the network: one line, whatever raised it
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise RunFailed(f"process {rank} could not join the other {world - 1} ({detail}): check the rendezvous "
                        "endpoint and that every node started the same command") from None
    return Dist(rank, world, local_rank, local_world, device, cfg.dist_timeout)


def is_comm_error(exc: BaseException) -> bool:
    """A failed collective (torch's DistError; gloo's and NCCL's errors arrive as plain RuntimeErrors)."""
    import torch.distributed as tdist

    if isinstance(exc, getattr(tdist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        mark in text for mark in ("gloo", "NCCL", "Connection reset", "Connection closed", "ProcessGroup"))


class ReadOnlyRun(RunDir):
    """The run folder as a process other than rank 0 sees it: read as rank 0 left it, never written."""

    def write_json(self, name: str, obj: Any) -> None:
        pass

    def append_metrics(self, record: dict) -> None:
        pass

    def write_metrics_csv(self) -> None:
        pass

    def truncate_metrics(self, epochs: int) -> None:
        pass

    def remove_orphan_temp_files(self) -> list[str]:
        return []

    def read_json(self, name: str) -> Any:
        return super().read_json(name) if self.file(name).exists() else {}

    def commit(self) -> None:
        pass

    def abandon(self) -> str:
        return ""


# -- the data each process takes ---------------------------------------------------------------------------------------
STREAMED = ("this image folder is streamed from disk (too large for memory), which distributed training does not "
            "do: give a smaller --image-size so that it fits, or train in one process")

class ShardedSplit:
    """A training split as one process steps through it: each global batch of the epoch's order, this process's
    share of it. ``iterate_batches`` hands a split that is not an in-memory ``Split`` to its own ``batches``."""

    def __init__(self, split, dist: Dist):
        from deepdive.data.pipeline import Split

        if not isinstance(split, Split):
            raise UserError(STREAMED)
        self.split, self.dist = split, dist

    def __len__(self) -> int:
        return len(self.split)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.split.images.shape[1:])  # type: ignore[return-value]

    @property
    def labels(self):
        return self.split.labels

    def head(self, n: int):
        return self.split.head(n)

    def to(self, device) -> "ShardedSplit":
        return ShardedSplit(self.split.to(device), self.dist)

    def batches(self, batch_size: int, order, start_batch: int, with_index: bool):
        import torch

        split = self.split
        if order is None:
            order = torch.arange(len(split))
        for start in range(start_batch * batch_size, len(split), batch_size):
            idx = order[start:start + batch_size]
            lo, hi = self.dist.share(len(idx))
            idx = idx[lo:hi]
            at = idx.to(split.images.device)
            images, labels = split.images[at], split.labels[at]
            yield (images, labels, idx) if with_index else (images, labels)


class SharedDraws:
    """The augmenter drawing its random numbers for the whole global batch and keeping this process's rows."""

    def __init__(self, augmenter, trainer: "DistributedTrainer"):
        self.augmenter, self.trainer = augmenter, trainer

    def __call__(self, images, index, epoch: int):
        return self.augmenter(images, index, epoch, rows=(self.trainer.offset, self.trainer.n_global))

    def state(self) -> dict:
        return self.augmenter.state()

    def load_state(self, state: dict) -> None:
        self.augmenter.load_state(state)


# -- layers whose randomness or statistics span the global batch ---------------------------------------------------
_global_batch: tuple[int, int] | None = None  # (images in the global batch, this process's first row) in a step


class _GlobalBatch:
    def __init__(self, total: int, offset: int):
        self.value = (total, offset)

    def __enter__(self):
        global _global_batch
        _global_batch = self.value

    def __exit__(self, *exc):
        global _global_batch
        _global_batch = None


_LAYERS: dict = {}


def layers() -> dict:
    """The two layer classes below, defined on first use (this module imports torch lazily)."""
    if _LAYERS:
        return _LAYERS
    import torch
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

    class GlobalBatchDropout(nn.Dropout):
        """nn.Dropout whose mask is drawn for the global batch, this process keeping its own rows.

        On the CPU ``F.dropout`` draws ``empty_like(x).bernoulli_(1 − p)``; drawing that for the n images of
        the global batch and taking rows [offset, offset + n_r) gives each image the mask one process would
        give it, and leaves the generator where one process leaves it. On CUDA the mask is that of the fused
        kernel on the global batch's shape. Outside a training step (evaluation in train mode) it is
        plain dropout."""

        def forward(self, x):
            share = _global_batch
            if not self.training or share is None or not 0 < self.p < 1 or x.dim() == 0:
                return super().forward(x)
            total, offset = share
            n = x.shape[0]
            shape = (total, *x.shape[1:])
            if x.device.type == "cuda":
                keep = torch.native_dropout(torch.ones(shape, dtype=x.dtype, device=x.device), self.p, True)[1]
                return x * keep[offset:offset + n].to(x.dtype) * (1.0 / (1 - self.p))
            noise = torch.empty(shape, dtype=x.dtype, device=x.device)
            if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
                noise = noise.contiguous(memory_format=torch.channels_last)
            noise.bernoulli_(1 - self.p)
            noise.div_(1 - self.p)
            return x * noise[offset:offset + n]

    class _SyncNorm(torch.autograd.Function):
        """Batch normalization over the global batch: mean and variance from sums all-reduced over processes.

        forward:  μ = Σx/N, σ² = Σx²/N − μ² (N: all processes' values per channel), x̂ = (x − μ)/√(σ² + ε)
        backward: ∂x = γ/√(σ² + ε) · (∂y − Σ∂y/N − x̂ · Σ(∂y·x̂)/N), the sums over all processes;
        γ's and β's gradients stay local (Σ∂y·x̂, Σ∂y): DDP averages them with every other gradient."""

        @staticmethod
        def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum):
            import torch.distributed as tdist

            dims = [0, *range(2, x.dim())]
            xf = x.float()
            count = xf.numel() // xf.shape[1]
            stats = torch.cat([xf.sum(dims).double(), (xf * xf).sum(dims).double(),
                               torch.tensor([float(count)], dtype=torch.float64, device=x.device)])
            tdist.all_reduce(stats)
            c = xf.shape[1]
            total = stats[-1]
            mean = stats[:c] / total
            var = (stats[c:2 * c] / total - mean * mean).clamp_min(0)
            if running_mean is not None:
                with torch.no_grad():
                    running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
                    unbiased = var * total / (total - 1).clamp_min(1)
                    running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
            view = [1, c] + [1] * (x.dim() - 2)
            invstd = (var + eps).rsqrt().float().view(view)
            xhat = (xf - mean.float().view(view)) * invstd
            y = xhat if weight is None else xhat * weight.float().view(view) + bias.float().view(view)
            ctx.save_for_backward(xhat, invstd, weight)
            ctx.total = float(total)
            return y.to(x.dtype)

        @staticmethod
        def backward(ctx, dy):
            import torch.distributed as tdist

            xhat, invstd, weight = ctx.saved_tensors
            dims = [0, *range(2, xhat.dim())]
            dyf = dy.float()
            sum_dy, sum_dy_xhat = dyf.sum(dims), (dyf * xhat).sum(dims)
            both = torch.cat([sum_dy, sum_dy_xhat]).double()
            tdist.all_reduce(both)
            c = xhat.shape[1]
            view = [1, c] + [1] * (xhat.dim() - 2)
            g_dy, g_dy_xhat = (both[:c] / ctx.total).float().view(view), (both[c:] / ctx.total).float().view(view)
            scale = invstd if weight is None else invstd * weight.float().view(view)
            dx = (scale * (dyf - g_dy - xhat * g_dy_xhat)).to(dy.dtype)
            if weight is None:
                return dx, None, None, None, None, None, None
            return dx, sum_dy_xhat.to(weight.dtype), sum_dy.to(weight.dtype), None, None, None, None

    class CpuSyncBatchNorm(_BatchNorm):
        """--sync-bn on the CPU (torch's SyncBatchNorm runs on GPUs only): training-mode statistics of the
        global batch via ``_SyncNorm``; evaluation, and a single process, as plain BatchNorm."""

        def _check_input_dim(self, input):
            if input.dim() < 2:
                raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

        def forward(self, x):
            import torch.distributed as tdist

            if not (self.training and tdist.is_initialized() and tdist.get_world_size() > 1):
                return super().forward(x)
            momentum = self.momentum
            if self.track_running_stats and self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
                if momentum is None:
                    momentum = 1.0 / float(self.num_batches_tracked)
            return _SyncNorm.apply(x, self.weight, self.bias, self.running_mean if self.track_running_stats else None,
                                   self.running_var if self.track_running_stats else None, self.eps,
                                   momentum if momentum is not None else 0.0)

    _LAYERS.update(GlobalBatchDropout=GlobalBatchDropout, CpuSyncBatchNorm=CpuSyncBatchNorm, _SyncNorm=_SyncNorm)
    return _LAYERS


def global_batch_layers(model, sync_bn: bool, device_type: str):
    """Turn nn.Dropout into ``GlobalBatchDropout`` and (``sync_bn``) BatchNorm into its synchronised form, by
    changing the layers' class in place: the same objects with the same parameters and buffers, so the
    optimizer, the EMA's copy, --freeze-backbone's list of norms and the state_dict keys are unchanged."""
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

    kinds = layers()
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = kinds["GlobalBatchDropout"]
        elif sync_bn and isinstance(module, _BatchNorm) and not isinstance(
                module, (nn.SyncBatchNorm, kinds["CpuSyncBatchNorm"])):
            module.__class__ = nn.SyncBatchNorm if device_type == "cuda" else kinds["CpuSyncBatchNorm"]
            module.process_group = None  # SyncBatchNorm's: the whole world
    return model


# -- the trainer -------------------------------------------------------------------------------------------------------
class DistributedTrainer(Trainer):
    """``Trainer`` as one of W processes: its share of each global batch, the loss weighted by that share,
    gradients averaged by DDP, one all-reduce per step for the loss, signals and clock, evaluation sharded,
    and the run folder written by rank 0 only. ``self.model`` stays the bare module (its weights, the EMA's,
    checkpoints and evaluation use it); ``self.net``, the DDP wrapper, runs the training forward pass."""

    def __init__(self, dist: Dist, cfg, run, bundle, engine, model, optimizer, stop, clock=None, hooks=None):
        from deepdive.data.pipeline import Split
        from deepdive.training.signals import StopFlag

        self.dist, self.world_size, self.main_process = dist, dist.world, dist.main
        bundle.train = ShardedSplit(bundle.train, dist)
        if not all(isinstance(split, Split) for split in (bundle.test, bundle.val) if split is not None):
            raise UserError(STREAMED)
        global_batch_layers(model, cfg.sync_bn, dist.device.type)
        super().__init__(cfg, run, bundle, engine, model, optimizer, stop, clock, hooks)
        self.signals, self.stop = stop, StopFlag()  # signals set `signals`; the loop acts on the agreed `stop`
        # DDP: made once every process has agreed (fit), made again when the trainable parameters change
        # (--freeze-backbone, --unfreeze-after)
        self.net, self.trainable = None, None
        if self.augmenter:
            self.augmenter = SharedDraws(self.augmenter, self)
        self.offset = self.n_local = self.n_global = 0  # this step's share: first row, images, global batch
        self.local_loss = None
        self.agreed_seconds = 0.0  # rank 0's training clock, as of the last step: the --time-budget schedule

    # -- DDP ----------------------------------------------------------------------------------------------------
    def wrap(self) -> None:
        """The DDP wrapper over the parameters that train now (DDP registers them when it is made)."""
        from torch.nn.parallel import DistributedDataParallel

        trainable = tuple(id(p) for p in self.model.parameters() if p.requires_grad)
        if trainable == self.trainable:
            return
        ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
        try:
            self.net = DistributedDataParallel(self.model, device_ids=ids)  # broadcasts rank 0's weights
        except RuntimeError as exc:
            if is_comm_error(exc):
                raise self.dist.lost(exc) from None
            raise
        self.trainable = trainable

    def fit(self, summary: dict) -> dict:
        try:
            self.wrap()
            return super().fit(summary)
        except RuntimeError as exc:
            if self.dist.broken or not is_comm_error(exc):
                raise
            raise self.dist.lost(exc) from None
        except (RunFailed, UserError, Interrupted) as exc:  # decided on agreed figures: rank 0 says it for all
            local = getattr(exc, "local", False)  # (unless this process alone met it: then it says it itself)
            if not self.main_process and not getattr(exc, "quiet", False) and not self.dist.broken and not local:
                quiet(exc)
            raise
        finally:
            self.net = self.trainable = None  # the DDP wrapper goes with the group (Dist.close)

    # -- a step ---------------------------------------------------------------------------------------------------
    def train_step(self, batch) -> None:
        if self.freezer:
            self.freezer.apply(self.model, self.state.epoch)
        self.wrap()
        super().train_step(batch)

    def phase_data(self, batch):
        start = self.state.step_in_epoch * self.cfg.batch_size
        self.n_global = min(self.cfg.batch_size, len(self.bundle.train) - start)
        self.offset, hi = self.dist.share(self.n_global)
        self.n_local = hi - self.offset
        return super().phase_data(batch)

    def phase_forward(self, x, y):
        """The share's mean loss, scaled by W·n_r/n: DDP's average of the gradients is then the global mean's."""
        with _GlobalBatch(self.n_global, self.offset):
            loss = super().phase_forward(x, y)
        self.local_loss = loss.detach()
        return loss * (self.world_size * self.n_local / self.n_global)

    def loss_value(self, loss) -> float:
        """The global batch's mean loss; the same all-reduce brings every process's signals and rank 0's clock."""
        local = float(self.local_loss.item()) * self.n_local if self.n_local else 0.0
        signum = self.signals.signum
        clock = self.watch.elapsed("train") if self.main_process else 0.0
        total, count, interrupts, terms, clock = self.dist.sum(
            [local, float(self.n_local), float(signum == signal.SIGINT), float(signum == signal.SIGTERM), clock])
        if (interrupts or terms) and self.stop.signum is None:
            self.stop.signum = signal.SIGTERM if terms else signal.SIGINT
        self.agreed_seconds = clock
        return total / count

    def phase_bookkeeping(self, loss: float, images: int) -> None:
        super().phase_bookkeeping(loss, self.n_global)

    def progress(self) -> float:
        if self.cfg.time_budget:
            return self.agreed_seconds / self.cfg.time_budget
        return super().progress()

    # -- evaluation -----------------------------------------------------------------------------------------------
    def evaluate(self, split, **kwargs):
        """This process's contiguous share of ``split``; loss sums, correct and counted images added over all."""
        from deepdive.data.pipeline import Split
        from deepdive.training.evaluation import evaluation_sums

        lo, hi = self.dist.share(len(split))
        part = Split(split.images[lo:hi], split.labels[lo:hi])
        with self.watch.phase("eval"):
            sums = evaluation_sums(self.engine, self.eval_model(), part, tta=self.cfg.tta, **kwargs)
            loss_sum, correct, seen = self.dist.sum([float(v) for v in sums])
        if not seen:
            return math.nan, math.nan
        return loss_sum / seen, correct / seen

    # -- what rank 0 alone writes ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if self.main_process:
            super().save_checkpoint()

    def save_weights(self, record: dict) -> None:
        if self.main_process:
            super().save_weights(record)

    def restore(self, saved: dict) -> None:
        """As one process; on CUDA each process's generator is its own GPU's, restored from the one rank 0 used."""
        import torch

        super().restore(saved)
        cuda = saved["rng"].get("cuda")
        if cuda and self.dist.device.type == "cuda":
            torch.cuda.set_rng_state(cuda[0])  # single process and rank 0 both draw on their first GPU
        self.agreed_seconds = self.watch.elapsed("train")


# -- torchrun restarts and the --nproc launcher -----------------------------------------------------------------------
def restarted_run(cfg, out_given: bool):
    """A worker that torchrun restarted (TORCHELASTIC_RESTART_COUNT > 0) continues the run folder at --out from
    its last checkpoint: (locked run, its config, []) for ``resume_run``; None in a first attempt, or when the
    first attempt died before making the folder."""
    from deepdive.config.train_config import NOT_ALTERING
    from deepdive.storage.runs import CONFIG

    if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0 and not out_given:
        error = UserError("under torchrun --max-restarts give --out: a restarted process resumes the run folder "
                          "it names")
        raise quiet(error) if env_rank() else error
    if restart_count() == 0 or not cfg.out or not (RunDir(cfg.out).file(CONFIG)).is_file():
        return None
    from deepdive.training.resume import open_resume

    run, saved, _ = open_resume(cfg.out, {})
    mine, theirs = cfg.to_dict(), saved.to_dict()
    for key in ("init_from", "weights"):  # the first attempt recorded them as absolute paths (train/setup.py)
        if mine.get(key):
            mine[key] = os.path.abspath(mine[key])
    changed = sorted(k for k in mine if k not in NOT_ALTERING | {"out"} and mine[k] != theirs.get(k))
    if changed:
        run.close()
        error = UserError(f"--out {cfg.out} holds a run of other settings ({', '.join(changed[:4])}): a restarted "
                          "process resumes only its own run")
        raise quiet(error) if env_rank() else error
    if env_rank() == 0:
        log.info("restart %d: resuming %s from its last checkpoint", restart_count(), run.path)
    return run, saved, []


def launch(argv: list[str], nproc: int, flags: dict, config_file: str | None, resume: str | None, force: bool,
           overwrite: bool) -> int | None:
    """``deepdive train ... --nproc N``: checks what every process would refuse (one line, before any starts),
    then runs this very command in N processes with torchrun's own launcher (``torch.distributed.run``,
    single node, ``--standalone``). None: N is 1, train in this process."""
    from deepdive.config.resolve import resolve_config

    if "RANK" in os.environ:
        raise UserError("--nproc starts torchrun itself: under torchrun, drop --nproc")
    if nproc < 1:
        raise UserError(f"--nproc {nproc} is invalid: give the number of processes, e.g. 2")
    if resume:
        from deepdive.training.resume import open_resume
        run, cfg, _ = open_resume(resume, flags, force)
        run.close()
    else:
        from deepdive.storage.config_file import read_config_file
        cfg = resolve_config(flags, read_config_file(config_file) if config_file else None)
        RunDir.check_free(cfg.out, overwrite)
    if nproc == 1:
        return None
    check(cfg, nproc)
    forwarded = _without_nproc(argv)
    if not resume and "out" not in flags:
        forwarded += ["--out", str(cfg.out)]  # every process must name the folder rank 0 makes
    return _torchrun(["--standalone", "--nproc-per-node", str(nproc), "-m", "deepdive", *forwarded],
                     threads_per_process(cfg.model, nproc) if cfg.threads is None else cfg.threads)


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _torchrun(arguments: list[str], threads: int) -> int:
    """torchrun in this process; a failed worker's exit code comes back (its own message is above)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # torchrun would set 1 and warn about it
    for name in ("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # a worker's failure is said by the worker
    try:
        run(get_args_parser().parse_args(arguments))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        if code < 0:  # killed by a signal: nobody said anything
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            log.error("deepdive train: run failed: process %d was killed by %s (out of memory?)", rank, name)
            return 128 - code
        return code
    except SignalException as exc:  # SIGINT/SIGTERM here: torchrun passed it on; the workers checkpointed
        return 128 + int(exc.sigval)
    return 0
