"""What the training loop carries between steps: one ``TrainState``, one ``Stopwatch``.

Both are saved into ``state.pt`` by field name and restored the same way, so a
resumed run continues with the very numbers the interrupted one held; a restored
state is checked to fit the run (``check_position``, ``check_same_hyperparameter_types``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable


ARTICLE_WINDOW = 1000  # batches the article's script averages per printed loss line


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # completed steps of the current epoch
    global_step: int = 0  # completed steps of the run
    images_seen: int = 0  # training images stepped over in the whole run (partial epochs too)
    order: Any = None  # the current epoch's permutation of the training set (None between epochs)
    loss_sum: float = 0.0  # the current epoch's summed training loss ...
    seen: int = 0  # ... over this many images
    epoch_train_start: float = 0.0  # the training clock when the current epoch began
    best: dict = field(default_factory=lambda: {"metric": "test_accuracy", "value": None, "epoch": None})
    target: dict | None = None  # --target-accuracy bookkeeping
    finished_early: bool = False  # the target or the time budget ended the run mid-schedule
    clocks: dict = field(default_factory=dict)  # the stopwatch's totals, saved with the rest
    first_loss: float | None = None  # the run's first step's loss: the yardstick of --divergence-factor
    block_loss_sum: float = 0.0  # the article's printout: batch losses summed over the current block of
    block_steps: int = 0  # ARTICLE_WINDOW batches (blocks aligned at the epoch's start) ...
    last_block_loss: float | None = None  # ... and the mean of the epoch's last complete block

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainState":
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})

    @classmethod
    def from_legacy(cls, saved: dict) -> "TrainState":
        """A state.pt of format 1, whose loop fields sat at the top level with three separate clocks."""
        state = cls.from_dict(saved)
        train = saved.get("train_seconds", 0.0) + saved.get("epoch_seconds", 0.0)
        state.clocks = {"train": train, "eval": saved.get("eval_seconds", 0.0)}
        state.epoch_train_start = saved.get("train_seconds", 0.0)
        return state

    def begin_epoch(self, order) -> None:
        self.order, self.step_in_epoch, self.loss_sum, self.seen = order, 0, 0.0, 0
        self.block_loss_sum, self.block_steps, self.last_block_loss = 0.0, 0, None

    def article_window_loss(self) -> float | None:
        """What the article's script last printed in the epoch: ``running_loss / 1000`` after batches 1,000,
        2,000, 3,000 (the mean of batches 2,000-2,999 of a 3,125-batch epoch). An epoch shorter than 1,000
        batches prints nothing there; the mean of its batches stands in."""
        if self.last_block_loss is not None:
            return self.last_block_loss
        return self.block_loss_sum / self.block_steps if self.block_steps else None

    def record_step(self, loss: float, images: int) -> None:
        self.step_in_epoch += 1
        self.global_step += 1
        self.images_seen += images
        self.loss_sum += loss * images
        self.seen += images
        self.block_loss_sum += loss
        self.block_steps += 1
        if self.block_steps == ARTICLE_WINDOW:
            self.last_block_loss, self.block_loss_sum, self.block_steps = self.block_loss_sum / ARTICLE_WINDOW, 0.0, 0


class Stopwatch:
    """One clock for the whole run, split into named phases ("train", "eval").

    Only one phase runs at a time; ``pause_for(name)`` stops the running phase
    while ``name`` runs (evaluation inside an epoch is not training time). The
    clock is injectable: tests pass a fake one, so nothing depends on wall time.
    """

    def __init__(self, clock: Callable[[], float] | None = None, totals: dict | None = None):
        self.clock = clock or time.perf_counter
        self.totals: dict[str, float] = dict(totals or {})
        self.running: tuple[str, float] | None = None

    def elapsed(self, name: str) -> float:
        total = self.totals.get(name, 0.0)
        if self.running and self.running[0] == name:
            total += self.clock() - self.running[1]
        return total

    def start(self, name: str) -> None:
        self.stop()
        self.running = (name, self.clock())

    def stop(self) -> None:
        if self.running:
            name, began = self.running
            self.totals[name] = self.totals.get(name, 0.0) + self.clock() - began
            self.running = None

    @contextlib.contextmanager
    def phase(self, name: str):
        """Run ``name`` for the block, then resume whatever ran before."""
        previous = self.running[0] if self.running else None
        self.start(name)
        try:
            yield
        finally:
            self.stop()
            if previous:
                self.start(previous)

    def state(self) -> dict:
        return {name: self.elapsed(name) for name in {*self.totals, *([self.running[0]] if self.running else [])}}


# -- a restored state must fit this run ----------------------------------------------------------------------------
def check_position(state: TrainState, steps_per_epoch: int, n: int) -> None:
    """The position of a restored state within an epoch of ``steps_per_epoch`` steps over ``n`` images."""
    import torch

    if state.step_in_epoch > steps_per_epoch:
        raise ValueError(f"step {state.step_in_epoch} of an epoch of {steps_per_epoch} steps")
    if state.order is not None and not (
            state.order.dtype == torch.int64 and state.order.shape == (n,)
            and torch.equal(state.order.sort().values, torch.arange(n))):
        raise ValueError(f"the saved data order is not a permutation of the {n} training images")


def check_same_hyperparameter_types(fresh: list[dict], loaded: list[dict]) -> None:
    """A restored optimizer's settings must be of the kinds this optimizer uses (numbers, flags, pairs)."""
    for new, old in zip(fresh, loaded):
        for key, value in new.items():
            if not _same_kind(value, old.get(key)):
                raise ValueError(f"optimizer setting {key} is {old.get(key)!r}, this optimizer uses "
                                 f"{type(value).__name__}")


def _same_kind(fresh, saved) -> bool:
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if fresh is None or isinstance(fresh, bool):
        return type(saved) is type(fresh)
    if isinstance(fresh, (int, float)):
        return number(saved)
    if isinstance(fresh, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(fresh) and all(map(number, saved))
    return type(saved) is type(fresh)
