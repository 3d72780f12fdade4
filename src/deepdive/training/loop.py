"""The training loop, explicit and engine-agnostic, with checkpoints and exact resume.

    for each epoch:
        for each shuffled mini-batch (x, y):
            optimizer.zero_grad()
            loss = cross_entropy(model(x), y)
            loss.backward()          # backpropagation: the chain rule on the graph
            optimizer.step()         # θ ← update(θ, ∇L)
        evaluate on the test split (eval mode, no_grad); checkpoint

A step runs in labelled phases - data, forward, backward, clip, step, EMA,
bookkeeping - each a method below. The loop only touches the engine protocol
(``engines.Engine``), so the same code trains on PyTorch and on
``deepdive.scratch``. Its whole state - ``TrainState``, the stopwatch, weights,
optimizer, every RNG - goes into ``state.pt`` at each checkpoint, so a resumed
run takes exactly the steps the uninterrupted run would have taken.

The same code is one process of a data-parallel run (``training.ddp``): its group
(``self.group``) gives this process's rows of each batch, the sums that make a loss,
an evaluation or a stop global, and the model as DDP wraps it; rank 0 alone writes
(``group.main``). In one process (``OneProcess``) shares and sums are its own.
"""
from __future__ import annotations

import logging
import math

from deepdive.config.train_config import TrainConfig
from deepdive.errors import Interrupted, RunFailed, UserError
from deepdive.training.ddp.group import OneProcess, Rows
from deepdive.training.hooks import Hook, no_hook
from deepdive.training.optim import apply_decoupled_decay
from deepdive.training.progress import EpochProgress, log_epoch
from deepdive.training.train_state import Stopwatch, TrainState, check_position, check_same_hyperparameter_types

log = logging.getLogger("deepdive")


class Trainer:
    """Runs epochs of ``cfg`` on ``model``, recording into ``run``; resumable from ``state.pt``.

    ``stop`` is the flag SIGINT/SIGTERM set; ``clock`` and ``hooks`` are for tests (``Stopwatch``,
    ``training.hooks``); ``group`` is this process's place in a data-parallel run (``ddp.group``; one
    process by default). ``model`` stays the bare module: its weights, the EMA's, checkpoints and
    evaluation use it; the training forward pass runs it as the group wraps it."""

    def __init__(self, cfg: TrainConfig, run, bundle, engine, model, optimizer, stop, clock=None,
                 hooks: Hook | None = None, group=None):
        import torch

        from deepdive.data.pipeline import num_batches

        self.group = group or OneProcess()
        self.group.adopt(cfg, bundle, model)  # under DDP: this process's shares of the data, global-batch layers
        self.cfg, self.run, self.bundle, self.engine = cfg, run, bundle, engine
        self.model, self.optimizer = model, optimizer
        self.signals = stop  # what SIGINT/SIGTERM set ...
        self.stop = self.group.stop_flag(stop)  # ... and what the loop acts on: agreed by all processes
        self.hooks = hooks or no_hook
        self.rows = Rows(0, 0, 0)  # this step's images in its global batch
        self.generator = torch.Generator().manual_seed(cfg.seed)  # the data order
        self.watch = Stopwatch(clock)
        self.steps_per_epoch = num_batches(len(bundle.train), cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.eval_every = 0  # steps between target checks in the current epoch (0: none)
        target = {"target_accuracy": cfg.target_accuracy, "target_reached": False, "seconds_to_target": None,
                  "steps_to_target": None} if cfg.target_accuracy else None
        metric = "val_accuracy" if bundle.val is not None else "test_accuracy"
        self.state = TrainState(best={"metric": metric, "value": None, "epoch": None}, target=target)
        self.augmenter = self.ema = None
        self.tensorboard = None  # training.tensorboard.TensorBoardLog with --tensorboard
        self.freezer = None  # training.finetune.Freezer with --freeze-backbone
        if cfg.augment != "none":
            from deepdive.data.augment import BatchAugmenter
            self.augmenter = BatchAugmenter(cfg.augment, cfg.crop_pad, len(bundle.train), cfg.seed)
        if cfg.ema:
            from deepdive.training.ema import EMA
            self.ema = EMA(model, cfg.ema)

    # -- checkpoints ------------------------------------------------------------
    def checkpoint(self) -> dict:
        from deepdive.storage.state_file import capture_rng, numpy_tree_to_torch

        self.state.clocks = self.watch.state()
        return {"loop": self.state.to_dict(), "model": numpy_tree_to_torch(self.engine.weights(self.model)),
                "optimizer": self.engine.optimizer_state(self.optimizer), "rng": capture_rng(self.generator),
                "ema": self.ema.state() if self.ema else None,
                "augment": self.augmenter.state() if self.augmenter else None}

    def restore(self, saved: dict) -> None:
        """Load a checkpoint (structure checked by ``storage.schemas.check_state``); anything in it that does not
        fit this run - another model's weights, optimizer state of other shapes or types, an order of
        another dataset, a bad RNG state - raises here, before the caller writes a byte."""
        from deepdive.storage.state_file import restore_rng, torch_tree_to_numpy

        self.engine.load_weights(self.model, torch_tree_to_numpy(saved["model"]))
        fresh = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        self.engine.load_optimizer_state(self.optimizer, saved["optimizer"])
        check_same_hyperparameter_types(fresh, self.optimizer.param_groups)
        loop = saved.get("loop")
        self.state = TrainState.from_dict(loop) if loop is not None else TrainState.from_legacy(saved)
        check_position(self.state, self.steps_per_epoch, len(self.bundle.train))
        self.watch = Stopwatch(self.watch.clock, self.state.clocks)
        restore_rng(saved["rng"], self.generator)
        if self.ema and saved.get("ema"):
            self.ema.load_state(saved["ema"])
        if self.augmenter and saved.get("augment"):
            self.augmenter.load_state(saved["augment"])
        self.group.restored(saved["rng"], self.watch)
        self.set_lr()  # the config and the schedule position decide (--force may have changed --lr)

    def save_checkpoint(self) -> None:
        from deepdive.storage.runs import STATE
        from deepdive.storage.state_file import save_state

        if not self.group.main:  # rank 0 alone writes the run folder
            return
        save_state(self.run.file(STATE), self.checkpoint())

    # -- the run ------------------------------------------------------------------
    def fit(self, summary: dict) -> dict:
        from deepdive.storage.runs import SUMMARY

        summary["status"] = "running"
        self.run.write_json(SUMMARY, summary)
        with self.group.guard():  # under DDP: a lost process is one line, an agreed error said by rank 0
            while not self.state.finished_early and (self.cfg.time_budget or self.state.epoch < self.cfg.epochs):
                self.train_epoch()
                self.end_epoch(summary)
        summary["status"] = "completed"
        if self.tensorboard:
            self.tensorboard.close()
        if self.cfg.time_budget:
            summary.update(time_budget_seconds=self.cfg.time_budget,
                           epochs_done=self.state.global_step / self.steps_per_epoch, deterministic=False,
                           note="time-budgeted: the schedule follows the clock, so runs are not bit-reproducible")
        self.run.write_json(SUMMARY, summary)
        return summary

    # -- schedule ---------------------------------------------------------------------
    def progress(self) -> float:
        if self.cfg.time_budget:  # (under DDP rank 0's clock, agreed at the last step)
            return self.group.train_seconds(self.watch) / self.cfg.time_budget
        return self.state.global_step / max(self.total_steps, 1)

    def lr_now(self) -> float:
        from deepdive.training.schedule import lr_factor

        cfg = self.cfg
        return cfg.lr * lr_factor(cfg.schedule, self.progress(), cfg.warmup_fraction(), epochs=cfg.epochs,
                                  decay_epochs=cfg.decay_epochs, decay_rate=cfg.decay_rate)

    def set_lr(self) -> float:
        """This step's lr in every group; the head's groups (--head-lr) follow the same schedule from their own
        base: η_head(t) = head_lr · factor(t)."""
        lr = self.lr_now()
        head_lr = lr * self.cfg.head_lr / self.cfg.lr if self.cfg.head_lr else lr
        for group in self.optimizer.param_groups:
            group["lr"] = head_lr if group.get("role") == "head" else lr
        return lr

    # -- one epoch ----------------------------------------------------------------------
    def train_epoch(self) -> None:
        import torch

        from deepdive.data.pipeline import iterate_batches

        state = self.state
        if state.order is None:
            state.begin_epoch(torch.randperm(len(self.bundle.train), generator=self.generator))
            state.epoch_train_start = self.watch.elapsed("train")
        self.eval_every = self._eval_interval()
        self.model.train()
        progress = EpochProgress(self)
        try:
            with self.watch.phase("train"):
                for batch in iterate_batches(self.bundle.train, self.cfg.batch_size, order=state.order,
                                             start_batch=state.step_in_epoch, with_index=True):
                    self.train_step(batch)
                    progress.step()
                    if self.after_step():
                        break
        finally:
            progress.close()

    def _eval_interval(self) -> int:
        """Steps between test evaluations while chasing --target-accuracy (0: none)."""
        target = self.state.target
        if not target or target["target_reached"]:
            return 0
        return max(1, self.steps_per_epoch // self.cfg.evals_per_epoch)

    def train_step(self, batch) -> None:
        if self.freezer:  # every step: an evaluation in between puts the whole model back in train mode
            self.freezer.apply(self.model, self.state.epoch)
        x, y = self.phase_data(batch)
        loss = self.phase_forward(x, y)
        value = self.phase_backward(loss)
        self.phase_clip()
        self.phase_step()
        self.phase_ema()
        self.phase_bookkeeping(value, self.rows.total)

    # -- the phases of a step --------------------------------------------------------
    def phase_data(self, batch):
        """Batch to engine arrays (normalized), augmented; the schedule sets this step's lr. The augmenter draws
        for the whole global batch and keeps this process's rows (one process: all of them)."""
        images, labels, index = batch
        planned = min(self.cfg.batch_size, len(self.bundle.train) - self.state.step_in_epoch * self.cfg.batch_size)
        self.rows = self.group.rows(len(labels), planned)
        x, y = self.engine.inputs(images), self.engine.targets(labels)
        if self.augmenter:
            x = self.augmenter(x, index, self.state.epoch, rows=(self.rows.offset, self.rows.total))
        self.set_lr()
        return x, y

    def phase_forward(self, x, y):
        """The mean loss of this process's images. The model runs as the group wraps it (DDP: gradients averaged
        over the processes), its dropout drawing for the global batch."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.engine.autocast(), self.group.global_batch(self.rows):
            try:
                logits = self.group.wrap(self.model)(x)
            except ValueError as exc:  # BatchNorm given one value per channel: a last batch of one image
                if "more than 1 value per channel" not in str(exc):
                    raise
                error = UserError(f"a batch of {len(y)} image(s) (the last of the epoch, or one process's share of "
                                  f"it: {len(self.bundle.train)} images in batches of {self.cfg.batch_size}) is too "
                                  "small for the model's BatchNorm: choose a --batch-size (or --limit-train) that "
                                  "leaves more")
                error.local = True  # met by this process alone (distributed: not an agreed decision)
                raise error from None
        return self.engine.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)

    def phase_backward(self, loss) -> float:
        """Gradients of the global batch's mean loss (this share's weighed by the group); the loss, agreed by all
        processes, checked for divergence."""
        self.group.weigh(loss, self.rows).backward()
        value = self.loss_value(loss)
        state = self.state
        if state.global_step == 0 and state.first_loss is None:
            state.first_loss = value
        ceiling = self.cfg.divergence_factor * max(state.first_loss or 0.0, 0.01)
        if not math.isfinite(value) or (state.first_loss is not None and value > ceiling):
            grew = "" if not math.isfinite(value) else (
                f", above {self.cfg.divergence_factor:g} times the first step's {state.first_loss:.4g} "
                "(--divergence-factor)")
            raise RunFailed(f"the loss became {value:.4g} at epoch {state.epoch + 1}, step "
                            f"{state.step_in_epoch + 1}{grew}: the run diverged (learning rate too high? data badly "
                            "normalized? try a lower --lr or --grad-clip); the last good checkpoint is kept")
        return value

    def loss_value(self, loss) -> float:
        """The global batch's mean loss as a number; the same sum over the processes brings their stop signals
        (so that all stop at the same step) and rank 0's clock."""
        value, signum = self.group.agree_step(float(loss.item()), self.rows.count, self.signals.signum,
                                              self.watch.elapsed("train"))
        if signum is not None and self.stop.signum is None:
            self.stop.signum = signum
        return value

    def phase_clip(self) -> None:
        if self.cfg.grad_clip:
            self.engine.clip_grad_norm(self.model, self.cfg.grad_clip)

    def phase_step(self) -> None:
        """Decoupled weight decay θ ← θ(1 − ηλ) (groups that carry it), then the optimizer's update."""
        apply_decoupled_decay(self.optimizer, self.engine.scale_)
        self.optimizer.step()

    def phase_ema(self) -> None:
        if self.ema:
            self.ema.update(self.model)

    def phase_bookkeeping(self, loss: float, images: int) -> None:
        self.state.record_step(loss, images)
        self.hooks("step", self.state.global_step)

    # -- between steps ------------------------------------------------------------------
    def after_step(self) -> bool:
        """Stop flag, time budget, target checks; True ends the epoch early."""
        state, cfg = self.state, self.cfg
        if self.stop.signum is not None:
            self.save_checkpoint()  # mid-epoch: order, step and RNG go in, so resume replays exactly
            raise Interrupted(self.stop.signum)
        if cfg.time_budget and self.progress() >= 1.0:
            state.finished_early = True
            return True
        last = state.step_in_epoch == self.steps_per_epoch
        if self.eval_every and not state.target["target_reached"] and (
                state.step_in_epoch % self.eval_every == 0 or last):
            if self.check_target() and cfg.stop_at_target:
                state.finished_early = True
                return True
        return False

    def eval_model(self):
        """The weights the recipe reports: the EMA's when there is one."""
        return self.ema.model if self.ema else self.model

    def evaluate(self, split, **kwargs):
        """(mean loss, accuracy) on ``split``: each process measures its contiguous share, the sums are added."""
        from deepdive.training.evaluation import evaluation_sums

        with self.watch.phase("eval"):  # evaluation time is not training time
            sums = evaluation_sums(self.engine, self.eval_model(), self.group.eval_share(split), tta=self.cfg.tta,
                                   **kwargs)
            loss_sum, correct, seen = self.group.sum([float(v) for v in sums])
        return (loss_sum / seen, correct / seen) if seen else (math.nan, math.nan)

    def check_target(self) -> bool:
        """Evaluate on the test set (training clock stopped); True when the target accuracy is reached."""
        state, target = self.state, self.state.target
        _, accuracy = self.evaluate(self.bundle.test)
        log.info("step %d (epoch %.2f): test acc %.2f%% (target %.2f%%)", state.global_step,
                 state.global_step / self.steps_per_epoch, 100 * accuracy, 100 * self.cfg.target_accuracy)
        if accuracy >= self.cfg.target_accuracy and not target["target_reached"]:
            target.update(target_reached=True, seconds_to_target=self.watch.elapsed("train"),
                          steps_to_target=state.global_step, accuracy_at_target=accuracy)
            return True
        return False

    # -- end of an epoch ------------------------------------------------------------------
    def end_epoch(self, summary: dict) -> None:
        from deepdive.storage.runs import SUMMARY

        record = self.epoch_record()
        self.state.order, self.state.step_in_epoch = None, 0
        self.save_weights(record)
        self.run.append_metrics(record)
        if self.tensorboard:
            self.tensorboard.epoch(self.state.epoch, record, record["lr"], self.model)
        self.hooks("written", self.state.epoch)
        cfg, epoch = self.cfg, self.state.epoch
        if epoch % cfg.save_every == 0 or epoch == cfg.epochs or self.state.finished_early:
            self.save_checkpoint()  # the commit point: a crash before it replays this epoch
            self.run.commit()  # a run this one replaced (--overwrite) can go: this one has a whole epoch
            self.hooks("checkpoint", epoch)
        summary.update(self.summary_figures(record))
        self.run.write_json(SUMMARY, summary)
        log_epoch(record, "?" if cfg.time_budget else cfg.epochs)

    def epoch_record(self) -> dict:
        """The epoch's line of metrics.jsonl (evaluations included)."""
        cfg, state = self.cfg, self.state
        state.epoch += 1
        seconds = self.watch.elapsed("train") - state.epoch_train_start
        last = state.finished_early or (not cfg.time_budget and state.epoch >= cfg.epochs)
        test_loss = test_accuracy = None
        if cfg.eval_each_epoch or last:
            test_loss, test_accuracy = self.evaluate(self.bundle.test)
        record = {"epoch": state.epoch, "train_loss": state.loss_sum / max(state.seen, 1),
                  "train_loss_last_block": state.article_window_loss(), "test_loss": test_loss,
                  "test_accuracy": test_accuracy, "seconds": seconds,
                  "images_per_second": state.seen / seconds if seconds > 0 else None,
                  "lr": self.optimizer.param_groups[0]["lr"]}  # the last step's: where the schedule ended the epoch
        if state.finished_early and state.step_in_epoch < self.steps_per_epoch:
            record["steps"] = state.step_in_epoch  # a partial epoch: the target or the time budget ended it
        if self.bundle.val is not None:
            record["val_loss"], record["val_accuracy"] = self.evaluate(self.bundle.val)
        if cfg.eval_train_mode:
            record["test_accuracy_train_mode"] = self.evaluate(self.bundle.test, train_mode=True)[1]
        return record

    def save_weights(self, record: dict) -> None:
        """model.safetensors (the reported weights), best.safetensors, the last --keep epochs."""
        from deepdive.storage.weights import save_weights
        from deepdive.storage.runs import BEST, WEIGHTS

        if not self.group.main:  # rank 0 alone writes the run folder
            return
        weights, best, epoch = self.engine.weights(self.eval_model()), self.state.best, self.state.epoch
        save_weights(self.run.file(WEIGHTS), weights)
        score = record.get(best["metric"])
        if score is not None and (best["value"] is None or score > best["value"]):
            best.update(value=score, epoch=epoch)
            save_weights(self.run.file(BEST), weights)
        if self.cfg.keep:
            folder = self.run.file("checkpoints")
            folder.mkdir(exist_ok=True)
            save_weights(folder / f"epoch-{epoch:03d}.safetensors", weights)
            for old in sorted(folder.glob("epoch-*.safetensors"))[:-self.cfg.keep]:
                old.unlink()

    def summary_figures(self, record: dict) -> dict:
        state, train_seconds = self.state, self.watch.elapsed("train")
        figures = {"epochs": state.epoch, "train_loss": record["train_loss"], "test_loss": record["test_loss"],
                   "test_accuracy": record["test_accuracy"], "train_seconds": train_seconds,
                   "images_per_second": state.images_seen / train_seconds if train_seconds > 0 else None,
                   "best_metric": state.best["metric"], "best_value": state.best["value"],
                   "best_epoch": state.best["epoch"], "eval_seconds": self.watch.elapsed("eval"),
                   "weights": "ema" if self.ema else "final", "tta": self.cfg.tta}
        figures.update(state.target or {})
        figures.update({k: record[k] for k in ("val_loss", "val_accuracy", "test_accuracy_train_mode")
                        if k in record})
        return figures
