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

    # -- checkpoints ------------------------------------------------------------
    def state(self) -> dict:
        from deepdive.state import capture_rng, numpy_tree_to_torch

        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "order": self.order, "loss_sum": self.loss_sum, "seen": self.seen,
                "epoch_seconds": self.epoch_seconds, "train_seconds": self.train_seconds,
                "best": dict(self.best), "model": numpy_tree_to_torch(self.engine.weights(self.model)),
                "optimizer": self.engine.optimizer_state(self.optimizer), "rng": capture_rng(self.generator)}

    def load(self, state: dict) -> None:
        from deepdive.state import restore_rng, torch_tree_to_numpy

        self.engine.load_weights(self.model, torch_tree_to_numpy(state["model"]))
        self.engine.load_optimizer_state(self.optimizer, state["optimizer"])
        for key in ("epoch", "step_in_epoch", "global_step", "order", "loss_sum", "seen", "epoch_seconds",
                    "train_seconds", "best"):
            setattr(self, key, state[key])
        restore_rng(state["rng"], self.generator)
        for group in self.optimizer.param_groups:  # the config is the source of truth (--force may change lr)
            group["lr"] = self.cfg.lr

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
        while self.epoch < self.cfg.epochs:
            self.train_epoch()
            self.end_epoch(summary)
        summary["status"] = "completed"
        self.run.write_json(SUMMARY, summary)
        return summary

    def train_epoch(self) -> None:
        import torch
        from tqdm import tqdm

        from deepdive.data.pipeline import iterate_batches, num_batches

        cfg, engine, model, optimizer = self.cfg, self.engine, self.model, self.optimizer
        split = self.bundle.train
        if self.order is None:
            self.order = torch.randperm(len(split), generator=self.generator)
            self.step_in_epoch, self.loss_sum, self.seen, self.epoch_seconds = 0, 0.0, 0, 0.0
        epoch = self.epoch + 1
        steps = num_batches(len(split), cfg.batch_size)
        model.train()
        bar = tqdm(total=steps, initial=self.step_in_epoch, desc=f"epoch {epoch}", unit="batch", disable=None,
                   leave=False, file=sys.stderr)
        start = time.perf_counter()
        try:
            for images, labels in iterate_batches(split, cfg.batch_size, order=self.order,
                                                  start_batch=self.step_in_epoch):
                x, y = engine.inputs(images), engine.targets(labels)
                optimizer.zero_grad()
                logits = model(x)
                loss = engine.cross_entropy(logits, y)
                loss.backward()
                value = float(loss.item())
                if not math.isfinite(value):
                    raise RunFailed(f"the loss became {value} at epoch {epoch}, step {self.step_in_epoch + 1}: "
                                    "the run diverged (learning rate too high? data badly normalized? "
                                    "try a lower --lr or --grad-clip); the last good checkpoint is kept")
                if cfg.grad_clip:
                    engine.clip_grad_norm(model, cfg.grad_clip)
                optimizer.step()
                self.step_in_epoch += 1
                self.global_step += 1
                self.loss_sum += value * len(labels)
                self.seen += len(labels)
                bar.update(1)
                if self.step_in_epoch % 20 == 0:
                    bar.set_postfix(loss=f"{self.loss_sum / self.seen:.3f}", refresh=False)
                if self.stop.signum is not None:
                    self.epoch_seconds += time.perf_counter() - start
                    start = time.perf_counter()
                    self.save_checkpoint()  # mid-epoch: order, step and RNG go in, so resume replays exactly
                    raise Interrupted(self.stop.signum)
        finally:
            bar.close()
            self.epoch_seconds += time.perf_counter() - start

    def end_epoch(self, summary: dict) -> None:
        from deepdive.checkpoint import save_weights
        from deepdive.evaluate import evaluate_split
        from deepdive.runs import BEST, SUMMARY, WEIGHTS

        cfg, run, engine, model = self.cfg, self.run, self.engine, self.model
        self.epoch += 1
        epoch, seconds = self.epoch, self.epoch_seconds
        self.train_seconds += seconds
        train_loss = self.loss_sum / max(self.seen, 1)
        test_loss, test_accuracy = evaluate_split(engine, model, self.bundle.test)
        record = {"epoch": epoch, "train_loss": train_loss, "test_loss": test_loss, "test_accuracy": test_accuracy,
                  "seconds": seconds, "images_per_second": self.seen / seconds if seconds > 0 else None}
        if self.bundle.val is not None:
            record["val_loss"], record["val_accuracy"] = evaluate_split(engine, model, self.bundle.val)
        if cfg.eval_train_mode:
            record["test_accuracy_train_mode"] = evaluate_split(engine, model, self.bundle.test, train_mode=True)[1]
        self.order, self.step_in_epoch = None, 0

        weights = engine.weights(model)
        save_weights(run.file(WEIGHTS), weights)
        score = record[self.best["metric"]]
        if self.best["value"] is None or score > self.best["value"]:
            self.best.update(value=score, epoch=epoch)
            save_weights(run.file(BEST), weights)
        if cfg.keep:
            self._rotate_epoch_checkpoints(weights, epoch)
        run.append_metrics(record)
        if epoch % cfg.save_every == 0 or epoch == cfg.epochs:
            self.save_checkpoint()  # the commit point: a crash before it replays this epoch
        summary.update(epochs=epoch, train_loss=train_loss, test_loss=test_loss, test_accuracy=test_accuracy,
                       train_seconds=self.train_seconds,
                       images_per_second=len(self.bundle.train) * epoch / self.train_seconds
                       if self.train_seconds > 0 else None,
                       best_metric=self.best["metric"], best_value=self.best["value"], best_epoch=self.best["epoch"])
        for key in ("val_loss", "val_accuracy", "test_accuracy_train_mode"):
            if key in record:
                summary[key] = record[key]
        run.write_json(SUMMARY, summary)
        log.info("epoch %d/%d  train loss %.4f  test loss %.4f  test acc %.2f%%%s  %.1fs  %.0f img/s",
                 epoch, cfg.epochs, train_loss, test_loss, 100 * test_accuracy,
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

    engine = make_engine(cfg.engine, cfg.device, Normalizer(bundle.mean, bundle.std, bundle.input_shape[0]))
    seed_everything(cfg.seed)
    model = engine.build(build_model(cfg.model, engine.nn, engine.F, bundle.input_shape, bundle.num_classes,
                                     article_exact=cfg.article_exact))
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay,
                                optim=engine.optim)
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
