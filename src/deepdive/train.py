"""The training loop, explicit and engine-agnostic, with checkpoints and exact resume.

    for each epoch:
        for each shuffled mini-batch (x, y):
            optimizer.zero_grad()
            loss = cross_entropy(model(x), y)
            loss.backward()          # backpropagation: the chain rule on the graph
            optimizer.step()         # θ ← update(θ, ∇L)
        evaluate on the test split (eval mode, no_grad); checkpoint

The loop only touches the engine interface (see ``engines.py``), so the same
code trains on PyTorch and on ``deepdive.scratch``. Its whole state - weights,
optimizer, epoch, step, the epoch's data order, every RNG - goes into
``state.pt`` at each checkpoint, so a resumed run takes exactly the steps the
uninterrupted run would have taken.
"""
from __future__ import annotations

import logging
import math
import os
import random
import sys
import time

from deepdive import __version__
from deepdive.config import TrainConfig
from deepdive.errors import Interrupted, RunFailed

log = logging.getLogger("deepdive")


def seed_everything(seed: int) -> None:
    """One seed drives Python, NumPy and torch generators."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def set_threads(threads: int | None) -> int:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = threads or cores
    torch.set_num_threads(n)
    return n


class Trainer:
    """Runs epochs of ``cfg`` on ``model``, recording into ``run``; resumable from ``state.pt``."""

    def __init__(self, cfg: TrainConfig, run, bundle, engine, model, optimizer, stop):
        import torch

        self.cfg, self.run, self.bundle, self.engine = cfg, run, bundle, engine
        self.model, self.optimizer, self.stop = model, optimizer, stop
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0  # completed steps of the current epoch
        self.global_step = 0
        self.order = None  # the current epoch's permutation of the training set
        self.loss_sum, self.seen, self.epoch_seconds = 0.0, 0, 0.0
        self.train_seconds = 0.0
        self.best = {"metric": "val_accuracy" if bundle.val is not None else "test_accuracy",
                     "value": None, "epoch": None}
        from deepdive.data.pipeline import num_batches

        self.steps_per_epoch = num_batches(len(bundle.train), cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.eval_seconds = 0.0
        self.target = {"target_accuracy": cfg.target_accuracy, "target_reached": False,
                       "seconds_to_target": None, "steps_to_target": None} if cfg.target_accuracy else None
        self.finished_early = False  # target reached or time budget spent mid-epoch
        self.augmenter = None
        if cfg.augment != "none":
            from deepdive.data.augment import BatchAugmenter
            self.augmenter = BatchAugmenter(cfg.augment, cfg.crop_pad, len(bundle.train), cfg.seed)
        self.ema = None
        if cfg.ema:
            from deepdive.ema import EMA
            self.ema = EMA(model, cfg.ema)

    # -- checkpoints ------------------------------------------------------------
    def state(self) -> dict:
        from deepdive.state import capture_rng, numpy_tree_to_torch

        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "order": self.order, "loss_sum": self.loss_sum, "seen": self.seen,
                "epoch_seconds": self.epoch_seconds, "train_seconds": self.train_seconds,
                "best": dict(self.best), "model": numpy_tree_to_torch(self.engine.weights(self.model)),
                "optimizer": self.engine.optimizer_state(self.optimizer), "rng": capture_rng(self.generator),
                "eval_seconds": self.eval_seconds, "target": self.target,
                "ema": self.ema.state() if self.ema else None,
                "augment": self.augmenter.state() if self.augmenter else None}

    def load(self, state: dict) -> None:
        from deepdive.state import restore_rng, torch_tree_to_numpy

        self.engine.load_weights(self.model, torch_tree_to_numpy(state["model"]))
        self.engine.load_optimizer_state(self.optimizer, state["optimizer"])
        for key in ("epoch", "step_in_epoch", "global_step", "order", "loss_sum", "seen", "epoch_seconds",
                    "train_seconds", "best", "eval_seconds", "target"):
            setattr(self, key, state[key])
        restore_rng(state["rng"], self.generator)
        if self.ema and state["ema"]:
            self.ema.load_state(state["ema"])
        if self.augmenter and state["augment"]:
            self.augmenter.load_state(state["augment"])
        self.set_lr()  # the config and the schedule position decide (--force may have changed --lr)

    def save_checkpoint(self) -> None:
        from deepdive.runs import STATE
        from deepdive.state import save_state

        save_state(self.run.file(STATE), self.state())

    # -- the loop ---------------------------------------------------------------
    def fit(self) -> dict:
        from deepdive.runs import SUMMARY

        summary = self.run.read_json(SUMMARY)
        summary["status"] = "running"
        self.run.write_json(SUMMARY, summary)
        while not self.finished_early and (self.cfg.time_budget or self.epoch < self.cfg.epochs):
            self.train_epoch()
            self.end_epoch(summary)
        summary["status"] = "completed"
        if self.cfg.time_budget:
            summary.update(time_budget_seconds=self.cfg.time_budget,
                           epochs_done=self.global_step / self.steps_per_epoch,
                           deterministic=False,
                           note="time-budgeted: the schedule follows the clock, so runs are not bit-reproducible")
        self.run.write_json(SUMMARY, summary)
        return summary

    # -- schedule, evaluation model ------------------------------------------------
    def progress(self) -> float:
        if self.cfg.time_budget:
            return self.train_seconds_now() / self.cfg.time_budget
        return self.global_step / max(self.total_steps, 1)

    def train_seconds_now(self) -> float:
        running = time.perf_counter() - self._epoch_start if getattr(self, "_epoch_start", None) else 0.0
        return self.train_seconds + self.epoch_seconds + running

    def lr_now(self) -> float:
        from deepdive.schedule import lr_factor
        return self.cfg.lr * lr_factor(self.cfg.schedule, self.progress(), self.cfg.warmup)

    def set_lr(self) -> float:
        lr = self.lr_now()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def eval_model(self):
        """The weights the recipe reports: the EMA's when there is one."""
        return self.ema.model if self.ema else self.model

    def evaluate(self, split, **kwargs):
        from deepdive.evaluate import evaluate_split
        return evaluate_split(self.engine, self.eval_model(), split, tta=self.cfg.tta, **kwargs)

    def check_target(self) -> bool:
        """Evaluate on the test set (clock stopped); True when the target accuracy is reached."""
        paused = time.perf_counter()
        _, accuracy = self.evaluate(self.bundle.test)
        self.eval_seconds += time.perf_counter() - paused
        self._epoch_start += time.perf_counter() - paused  # evaluation time is not training time
        log.info("step %d (epoch %.2f): test acc %.2f%% (target %.2f%%)", self.global_step,
                 self.global_step / self.steps_per_epoch, 100 * accuracy, 100 * self.cfg.target_accuracy)
        if accuracy >= self.cfg.target_accuracy and not self.target["target_reached"]:
            self.target.update(target_reached=True, seconds_to_target=self.train_seconds_now(),
                               steps_to_target=self.global_step, accuracy_at_target=accuracy)
            return True
        return False

    def train_epoch(self) -> None:
        import torch
        from tqdm import tqdm

        from deepdive.data.pipeline import iterate_batches

        cfg, engine, model, optimizer = self.cfg, self.engine, self.model, self.optimizer
        split = self.bundle.train
        if self.order is None:
            self.order = torch.randperm(len(split), generator=self.generator)
            self.step_in_epoch, self.loss_sum, self.seen, self.epoch_seconds = 0, 0.0, 0, 0.0
        epoch = self.epoch + 1
        steps = self.steps_per_epoch
        eval_every = max(1, steps // cfg.evals_per_epoch) if self.target and not self.target["target_reached"] else 0
        model.train()
        bar = tqdm(total=steps, initial=self.step_in_epoch, desc=f"epoch {epoch}", unit="batch", disable=None,
                   leave=False, file=sys.stderr)
        self._epoch_start = time.perf_counter()
        try:
            for images, labels, index in iterate_batches(split, cfg.batch_size, order=self.order,
                                                         start_batch=self.step_in_epoch, with_index=True):
                x, y = engine.inputs(images), engine.targets(labels)
                if self.augmenter:
                    x = self.augmenter(x, index, self.epoch)
                lr = self.set_lr()
                optimizer.zero_grad(set_to_none=True)
                with engine.autocast():
                    logits = model(x)
                loss = engine.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing) \
                    if cfg.label_smoothing else engine.cross_entropy(logits, y)
                loss.backward()
                value = float(loss.item())
                if not math.isfinite(value):
                    raise RunFailed(f"the loss became {value} at epoch {epoch}, step {self.step_in_epoch + 1}: "
                                    "the run diverged (learning rate too high? data badly normalized? "
                                    "try a lower --lr or --grad-clip); the last good checkpoint is kept")
                if cfg.grad_clip:
                    engine.clip_grad_norm(model, cfg.grad_clip)
                if cfg.decoupled_wd and cfg.weight_decay:
                    with engine.no_grad():  # θ ← θ(1 − ηλ), decoupled from the gradient and its momentum
                        for p in model.parameters():
                            if p.requires_grad:
                                p.mul_(1 - lr * cfg.weight_decay)
                optimizer.step()
                if self.ema:
                    self.ema.update(model)
                self.step_in_epoch += 1
                self.global_step += 1
                self.loss_sum += value * len(labels)
                self.seen += len(labels)
                bar.update(1)
                if self.step_in_epoch % 20 == 0:
                    bar.set_postfix(loss=f"{self.loss_sum / self.seen:.3f}", lr=f"{lr:.3g}", refresh=False)
                if self.stop.signum is not None:
                    self.epoch_seconds += time.perf_counter() - self._epoch_start
                    self._epoch_start = time.perf_counter()
                    self.save_checkpoint()  # mid-epoch: order, step and RNG go in, so resume replays exactly
                    raise Interrupted(self.stop.signum)
                if cfg.time_budget and self.progress() >= 1.0:
                    self.finished_early = True
                    break
                if eval_every and not self.target["target_reached"] and (
                        self.step_in_epoch % eval_every == 0 or self.step_in_epoch == steps):
                    self.epoch_seconds += time.perf_counter() - self._epoch_start
                    self._epoch_start = time.perf_counter()
                    if self.check_target() and cfg.stop_at_target:
                        self.finished_early = True
                        break
        finally:
            bar.close()
            self.epoch_seconds += time.perf_counter() - self._epoch_start
            self._epoch_start = None

    def end_epoch(self, summary: dict) -> None:
        from deepdive.checkpoint import save_weights
        from deepdive.runs import BEST, SUMMARY, WEIGHTS

        cfg, run, engine = self.cfg, self.run, self.engine
        self.epoch += 1
        epoch, seconds = self.epoch, self.epoch_seconds
        self.train_seconds += seconds
        self.epoch_seconds = 0.0
        train_loss = self.loss_sum / max(self.seen, 1)
        paused = time.perf_counter()
        last = self.finished_early or (not cfg.time_budget and epoch >= cfg.epochs)
        if cfg.eval_each_epoch or last:
            test_loss, test_accuracy = self.evaluate(self.bundle.test)
        else:
            test_loss = test_accuracy = None
        record = {"epoch": epoch, "train_loss": train_loss, "test_loss": test_loss, "test_accuracy": test_accuracy,
                  "seconds": seconds, "images_per_second": self.seen / seconds if seconds > 0 else None}
        if self.finished_early and self.step_in_epoch < self.steps_per_epoch:
            record["steps"] = self.step_in_epoch  # a partial epoch: the target or the time budget ended it
        if self.bundle.val is not None:
            record["val_loss"], record["val_accuracy"] = self.evaluate(self.bundle.val)
        if cfg.eval_train_mode:
            record["test_accuracy_train_mode"] = self.evaluate(self.bundle.test, train_mode=True)[1]
        self.eval_seconds += time.perf_counter() - paused
        self.order, self.step_in_epoch = None, 0

        weights = engine.weights(self.eval_model())
        save_weights(run.file(WEIGHTS), weights)
        score = record.get(self.best["metric"])
        if score is not None and (self.best["value"] is None or score > self.best["value"]):
            self.best.update(value=score, epoch=epoch)
            save_weights(run.file(BEST), weights)
        if cfg.keep:
            self._rotate_epoch_checkpoints(weights, epoch)
        run.append_metrics(record)
        if epoch % cfg.save_every == 0 or epoch == cfg.epochs or self.finished_early:
            self.save_checkpoint()  # the commit point: a crash before it replays this epoch
        summary.update(epochs=epoch, train_loss=train_loss, test_loss=test_loss, test_accuracy=test_accuracy,
                       train_seconds=self.train_seconds,
                       images_per_second=len(self.bundle.train) * epoch / self.train_seconds
                       if self.train_seconds > 0 else None,
                       best_metric=self.best["metric"], best_value=self.best["value"], best_epoch=self.best["epoch"],
                       eval_seconds=self.eval_seconds, weights="ema" if self.ema else "final", tta=cfg.tta)
        if self.target:
            summary.update(self.target)
        for key in ("val_loss", "val_accuracy", "test_accuracy_train_mode"):
            if key in record:
                summary[key] = record[key]
        run.write_json(SUMMARY, summary)
        log.info("epoch %d/%s  train loss %.4f  test loss %.4f  test acc %.2f%%%s  %.1fs  %.0f img/s",
                 epoch, "?" if cfg.time_budget else cfg.epochs, train_loss, test_loss or math.nan,
                 100 * (test_accuracy or math.nan),
                 f"  val acc {100 * record['val_accuracy']:.2f}%" if "val_accuracy" in record else "",
                 seconds, record["images_per_second"] or 0)

    def _rotate_epoch_checkpoints(self, weights, epoch: int) -> None:
        from deepdive.checkpoint import save_weights

        folder = self.run.file("checkpoints")
        folder.mkdir(exist_ok=True)
        save_weights(folder / f"epoch-{epoch:03d}.safetensors", weights)
        for old in sorted(folder.glob("epoch-*.safetensors"))[:-self.cfg.keep]:
            old.unlink()


def build_components(cfg: TrainConfig, bundle):
    """Engine, model and optimizer for ``cfg``, seeded: the same seed builds the same model."""
    from deepdive.data.pipeline import Normalizer
    from deepdive.engines import make_engine
    from deepdive.models import build_model
    from deepdive.optim import build_optimizer

    from deepdive.loading import model_options

    normalizer = Normalizer(bundle.mean, bundle.std, bundle.input_shape[0])
    engine = make_engine(cfg.engine, cfg.device, normalizer, channels_last=cfg.model == "fastnet", amp=cfg.amp)
    seed_everything(cfg.seed)
    model = build_model(cfg.model, engine.nn, engine.F, bundle.input_shape, bundle.num_classes,
                        article_exact=cfg.article_exact, **model_options(cfg))
    if cfg.model == "fastnet" and cfg.whiten:
        from deepdive.models.fastnet import init_whitening
        init_whitening(model, normalizer(bundle.train.head(5000)))
    model = engine.build(model)
    weight_decay = 0.0 if cfg.decoupled_wd else cfg.weight_decay  # decoupled decay is applied by the loop
    optimizer = build_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad], cfg.lr,
                                cfg.momentum, weight_decay, optim=engine.optim)
    if cfg.compile:
        import torch
        model = torch.compile(model)
    return engine, model, optimizer


def run_training(cfg: TrainConfig, overwrite: bool = False, resume_state: dict | None = None,
                 run=None, forced: list[str] | None = None) -> dict:
    """Everything ``deepdive train`` does: data, engine, model, optimizer, run folder, the loop.

    With ``run`` (an existing folder) and ``resume_state`` the run continues
    where its ``state.pt`` left it.
    """
    import torch

    from deepdive.data import prepare_data
    from deepdive.runs import CONFIG, MODEL_INFO, SUMMARY, RunDir, default_run_dir
    from deepdive.signals import catch_stop_signals

    threads = set_threads(cfg.threads)
    if run is None:
        cfg.out = cfg.out or str(default_run_dir(cfg.model, cfg.dataset))
        RunDir.check_free(cfg.out, overwrite)  # fail before the (slow) data loading
    bundle = prepare_data(cfg)
    engine, model, optimizer = build_components(cfg, bundle)
    device = getattr(engine, "device", None)
    if getattr(device, "type", device) == "cuda":  # the whole dataset lives on the GPU: no per-batch copies
        bundle.train, bundle.test = bundle.train.to(device), bundle.test.to(device)
        if bundle.val is not None:
            bundle.val = bundle.val.to(device)
    if run is None:
        run = RunDir.create(cfg.out, overwrite=overwrite)
        run.write_json(CONFIG, cfg.to_dict())
        run.write_json(MODEL_INFO, {
            "model": cfg.model, "engine": cfg.engine, "classes": bundle.classes,
            "input_shape": list(bundle.input_shape), "mean": list(bundle.mean), "std": list(bundle.std),
            "article_exact": cfg.article_exact})
    trainer = Trainer(cfg, run, bundle, engine, model, optimizer, None)
    if resume_state is not None:
        trainer.load(resume_state)
        run.truncate_metrics(trainer.epoch)
        summary = run.read_json(SUMMARY)
        log.info("resuming %s at epoch %d, step %d", run.path, trainer.epoch + 1, trainer.step_in_epoch)
    else:
        run.truncate_metrics(0)
        summary = {"status": "running", "run": str(run.path), "model": cfg.model, "dataset": cfg.dataset,
                   "engine": cfg.engine, "epochs": 0, "test_accuracy": None, "test_loss": None,
                   "train_seconds": 0.0, "images_per_second": None}
    summary.update(train_examples=len(bundle.train), test_examples=len(bundle.test),
                   val_examples=len(bundle.val) if bundle.val is not None else 0,
                   device=str(getattr(engine, "device", "cpu")), threads=threads,
                   torch_version=torch.__version__, deepdive_version=__version__)
    if forced:
        summary["resume_forced"] = summary.get("resume_forced", []) + forced
    run.write_json(SUMMARY, summary)
    if resume_state is None:
        log.info("training %s on %s (%d train / %d test images, %s) -> %s", cfg.model, cfg.dataset,
                 len(bundle.train), len(bundle.test), summary["device"], run.path)

    with catch_stop_signals() as stop:
        trainer.stop = stop
        try:
            return trainer.fit()
        except RunFailed:
            _set_status(run, "failed")
            raise
        except (Interrupted, KeyboardInterrupt):
            _set_status(run, "interrupted")
            log.warning("interrupted at epoch %d, step %d; resume with: deepdive train --resume %s",
                        trainer.epoch + 1, trainer.step_in_epoch, run.path)
            raise
        except OSError as exc:  # disk full, folder removed, ...: the run failed, the input was fine
            _set_status(run, "failed")
            raise RunFailed(f"writing to the run folder {run.path} failed ({exc.strerror or exc}): "
                            "free disk space or choose another --out; the previous checkpoint is intact") from None


def _set_status(run, status: str) -> None:
    from deepdive.runs import SUMMARY

    try:
        summary = run.read_json(SUMMARY)
        summary["status"] = status
        run.write_json(SUMMARY, summary)
    except Exception as exc:  # the folder may be what failed; the original error matters more
        log.warning("warning: could not record status %r in %s (%s)", status, run.path, exc)
