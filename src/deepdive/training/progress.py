"""An epoch's progress: tqdm's bar on a terminal, plain log lines for logs and pipes."""
from __future__ import annotations

import logging
import math
import sys

log = logging.getLogger("deepdive")


class EpochProgress:
    """The bar of one epoch (rank 0 alone shows it), or without a terminal a line every --log-every seconds."""

    def __init__(self, trainer):
        from tqdm import tqdm

        state, cfg = trainer.state, trainer.cfg
        self.state = state
        self.bar = tqdm(total=trainer.steps_per_epoch, initial=state.step_in_epoch, desc=f"epoch {state.epoch + 1}",
                        unit="img", unit_scale=cfg.batch_size, disable=None if trainer.group.main else True,
                        leave=False, file=sys.stderr)
        self.lines = ProgressLines(trainer, cfg.log_every) if self.bar.disable and cfg.log_every else None

    def step(self) -> None:
        self.bar.update(1)
        if self.state.step_in_epoch % 20 == 0:
            self.bar.set_postfix(loss=f"{self.state.loss_sum / self.state.seen:.3f}", refresh=False)
        if self.lines:
            self.lines.maybe_log()

    def close(self) -> None:
        self.bar.close()


class ProgressLines:
    """The terminal bar's figures as a plain line every ``every`` seconds, for logs and pipes: a log
    then shows that a five-minute epoch is alive. Timed by the run's stopwatch clock (tests inject one)."""

    def __init__(self, trainer, every: float):
        self.trainer, self.every = trainer, every
        self.clock = trainer.watch.clock
        self.start = self.last = self.clock()
        self.start_step, self.start_seen = trainer.state.step_in_epoch, trainer.state.seen

    def maybe_log(self) -> None:
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        t, state = self.trainer, self.trainer.state
        done, total = state.step_in_epoch, t.steps_per_epoch
        elapsed = max(now - self.start, 1e-9)
        rate = (state.seen - self.start_seen) / elapsed
        left = (total - done) * elapsed / max(done - self.start_step, 1)
        log.info("epoch %d: step %d/%d (%.0f%%), loss %.4f, %.0f img/s, epoch ETA %s", state.epoch + 1, done, total,
                 100 * done / total, state.loss_sum / max(state.seen, 1), rate, duration(left))


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def log_epoch(record: dict, epochs) -> None:
    """The epoch's line: its losses and accuracies (nan where not evaluated), time and speed."""
    log.info("epoch %d/%s  train loss %.4f  test loss %.4f  test acc %.2f%%%s  %.1fs  %.0f img/s",
             record["epoch"], epochs, record["train_loss"], _number(record["test_loss"]),
             100 * _number(record["test_accuracy"]),
             f"  val acc {100 * record['val_accuracy']:.2f}%" if "val_accuracy" in record else "",
             record["seconds"], record["images_per_second"] or 0)


def _number(value) -> float:
    """A metric for the log line: NaN where there is none (never for a real 0.0)."""
    return math.nan if value is None else value
