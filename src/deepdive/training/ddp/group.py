"""The process group: this process's place in a run, and the few collectives the training loop makes.

The loop holds one group and calls it unconditionally. ``OneProcess`` is the group of a run in one
process: its share of anything is all of it, a sum is its own values, the model runs unwrapped, and
it decides alone. ``ProcessGroup`` is one of W processes under torchrun (``torchrun.start``): contiguous
shares, all-reduces, DistributedDataParallel, decisions agreed by all. Both have the same methods.
"""
from __future__ import annotations

import contextlib
import logging
import signal
from typing import Any, NamedTuple

from deepdive.errors import Interrupted, RunFailed, UserError, first_line
from deepdive.training.signals import StopFlag

log = logging.getLogger("deepdive")


def quiet(exc: BaseException) -> BaseException:
    """Mark an error that another process reports for all: the CLI then prints nothing for it."""
    exc.quiet = True  # type: ignore[attr-defined]
    return exc


class PeerFailed(RunFailed):
    """Another process failed; its own message says why."""


def is_comm_error(exc: BaseException) -> bool:
    """A failed collective (torch's DistError; gloo's and NCCL's errors arrive as plain RuntimeErrors)."""
    import torch.distributed as tdist

    if isinstance(exc, getattr(tdist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        mark in text for mark in ("gloo", "NCCL", "Connection reset", "Connection closed", "ProcessGroup"))


class Rows(NamedTuple):
    """Where this process's images of a training step sit in the step's global batch."""

    offset: int  # this process's first row
    count: int  # its images
    total: int  # the global batch's images


# -- one process -----------------------------------------------------------------------------------------------------
class OneProcess:
    """The group of a run in one process: everything is its own, and it decides alone."""

    rank, world, local_world = 0, 1, 1
    main = True  # this process shows progress and writes the run folder

    def share(self, n: int) -> tuple[int, int]:
        return 0, n

    def sum(self, values: list[float]) -> list[float]:
        return list(values)

    def agree(self, failure: BaseException | None) -> None:
        return None

    def fail(self, failure: BaseException) -> None:
        return None

    def close(self) -> None:
        return None

    def adopt(self, cfg, bundle, model) -> None:
        return None

    def wrap(self, model):
        return model

    def stop_flag(self, signals: StopFlag) -> StopFlag:
        return signals  # a signal stops the run at the very step it arrives in

    def rows(self, count: int, planned: int) -> Rows:
        return Rows(0, count, count)  # the batch as it came (a streamed one may have lost unreadable files)

    def global_batch(self, rows: Rows):
        return contextlib.nullcontext()

    def weigh(self, loss, rows: Rows):
        return loss

    def agree_step(self, loss: float, count: int, signum: int | None, seconds: float) -> tuple[float, int | None]:
        return loss, signum

    def train_seconds(self, watch) -> float:
        return watch.elapsed("train")

    def restored(self, rng: dict, watch) -> None:
        return None

    def eval_share(self, split):
        return split

    def guard(self):
        return contextlib.nullcontext()


# -- one of W processes ----------------------------------------------------------------------------------------------
class ProcessGroup:
    """One of W processes under torchrun: its place in the run, and the collectives deepdive itself makes."""

    def __init__(self, rank: int, world: int, local_rank: int, local_world: int, device, timeout: float):
        from deepdive.training.ddp.layers import GlobalBatch

        self.rank, self.world, self.local_rank, self.local_world = rank, world, local_rank, local_world
        self.device: Any = device  # torch.device the collectives' tensors live on
        self.timeout = timeout
        self.main = rank == 0
        self.agreed = False  # every process has reported its setup (the first collective)
        self.broken = False  # a collective failed: the group cannot be used any more
        self.batch = GlobalBatch()  # the step's rows, as the global-batch layers read them
        self.seconds = 0.0  # rank 0's training clock, as of the last step: the --time-budget schedule
        # DDP: made on the first step, made again when the trainable parameters change (--freeze-backbone,
        # --unfreeze-after); dropped with the group (close)
        self.net, self.trainable = None, None

    # -- shares and sums ---------------------------------------------------------------------------------------------
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
            raise self._lost(exc) from None
        return tensor.tolist()

    # -- setup and failure -------------------------------------------------------------------------------------------
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

    def _lost(self, exc: BaseException) -> RunFailed:
        """A collective failed: another process died or stopped answering. Said at once (torchrun may stop this
        process right after), returned as a quiet RunFailed for the caller to raise."""
        self.broken = True
        detail = first_line(exc, None)
        detail = detail.split("] ", 1)[-1][:140]  # gloo prefixes its source path
        message = (f"process {self.rank} of {self.world} lost contact with the others ({detail}): one of them "
                   f"died or did not answer within --dist-timeout {self.timeout:g} s; its own error, if any, is "
                   "above")
        log.error("deepdive train: run failed: %s", message)
        return quiet(RunFailed(message))  # type: ignore[return-value]

    @contextlib.contextmanager
    def guard(self):
        """The run's errors as the processes say them: a failed collective is one line (``_lost``); an error
        decided on agreed figures (divergence, a stop signal, ...) is said by rank 0 for all - unless this
        process alone met it (``exc.local``)."""
        try:
            yield
        except RuntimeError as exc:
            if self.broken or not is_comm_error(exc):
                raise
            raise self._lost(exc) from None
        except (RunFailed, UserError, Interrupted) as exc:
            local = getattr(exc, "local", False)
            if not self.main and not getattr(exc, "quiet", False) and not self.broken and not local:
                quiet(exc)
            raise

    def close(self) -> None:
        """Leave the group. DDP's reducer holds the group and sits in reference cycles: collected now, not at
        interpreter exit, where destroying the group's threads aborts the process."""
        import gc

        import torch.distributed as tdist

        self.net = self.trainable = None
        gc.collect()
        if tdist.is_initialized():
            tdist.destroy_process_group()

    # -- the run's data and model ------------------------------------------------------------------------------------
    def adopt(self, cfg, bundle, model) -> None:
        """The training split stepped through in shares (``ShardedSplit``); dropout, and BatchNorm with
        --sync-bn, over the global batch (``layers.global_batch_layers``). Evaluation splits must be in memory."""
        from deepdive.data.pipeline import Split
        from deepdive.training.ddp.layers import global_batch_layers
        from deepdive.training.ddp.sharding import STREAMED, ShardedSplit

        bundle.train = ShardedSplit(bundle.train, self)
        if not all(isinstance(split, Split) for split in (bundle.test, bundle.val) if split is not None):
            raise UserError(STREAMED)
        global_batch_layers(model, cfg.sync_bn, self.device.type, self.batch)

    def wrap(self, model):
        """The DDP wrapper over the parameters of ``model`` that train now (DDP registers them when it is made,
        and broadcasts rank 0's weights)."""
        from torch.nn.parallel import DistributedDataParallel

        trainable = tuple(id(p) for p in model.parameters() if p.requires_grad)
        if trainable != self.trainable:
            ids = [self.device.index] if self.device.type == "cuda" else None
            try:
                self.net = DistributedDataParallel(model, device_ids=ids)
            except RuntimeError as exc:
                if is_comm_error(exc):
                    raise self._lost(exc) from None
                raise
            self.trainable = trainable
        return self.net

    def eval_share(self, split):
        """This process's contiguous share of an evaluation split."""
        from deepdive.data.pipeline import Split

        lo, hi = self.share(len(split))
        return Split(split.images[lo:hi], split.labels[lo:hi])

    # -- a step ------------------------------------------------------------------------------------------------------
    def stop_flag(self, signals: StopFlag) -> StopFlag:
        """The flag the loop acts on: set when the processes have agreed on a signal (``agree_step``)."""
        return StopFlag()

    def rows(self, count: int, planned: int) -> Rows:
        """This process's share of a global batch of ``planned`` images (``count`` of them came here)."""
        lo, hi = self.share(planned)
        return Rows(lo, hi - lo, planned)

    def global_batch(self, rows: Rows):
        """The step's rows, for the layers that draw for the global batch, while the model runs."""
        return self.batch.step(rows.offset, rows.total)

    def weigh(self, loss, rows: Rows):
        """The share's mean loss scaled by W·n_r/n: DDP's average of the gradients is then the global mean's."""
        return loss * (self.world * rows.count / rows.total)

    def agree_step(self, loss: float, count: int, signum: int | None, seconds: float) -> tuple[float, int | None]:
        """The global batch's mean loss from this share's (``loss`` over ``count`` images) and the signal all stop
        for; the same all-reduce brings rank 0's training clock, which then times the run (``train_seconds``)."""
        total, images, interrupts, terms, self.seconds = self.sum(
            [loss * count if count else 0.0, float(count), float(signum == signal.SIGINT),
             float(signum == signal.SIGTERM), seconds if self.main else 0.0])
        return total / images, signal.SIGTERM if terms else signal.SIGINT if interrupts else None

    def train_seconds(self, watch) -> float:
        return self.seconds

    def restored(self, rng: dict, watch) -> None:
        """After a checkpoint is restored: on CUDA each process's generator is its own GPU's, set to the one rank 0
        used (single process and rank 0 both draw on their first GPU); the clock is the checkpoint's."""
        import torch

        cuda = rng.get("cuda")
        if cuda and self.device.type == "cuda":
            torch.cuda.set_rng_state(cuda[0])
        self.seconds = watch.elapsed("train")
