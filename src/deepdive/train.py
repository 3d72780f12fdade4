"""The training loop, explicit and engine-agnostic.

    for each epoch:
        for each shuffled mini-batch (x, y):
            optimizer.zero_grad()
            loss = cross_entropy(model(x), y)
            loss.backward()          # backpropagation: the chain rule on the graph
            optimizer.step()         # θ ← update(θ, ∇L)
        evaluate on the test split (eval mode, no_grad)

The loop only touches the engine interface (see ``engines.py``), so the same
code trains on PyTorch and on ``deepdive.scratch``.
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


def train_one_epoch(engine, model, optimizer, split, batch_size, generator, epoch, stop) -> float:
    """One pass over ``split`` in shuffled mini-batches; returns the mean training loss."""
    from tqdm import tqdm

    from deepdive.data.pipeline import iterate_batches, num_batches

    model.train()
    total, seen = 0.0, 0
    steps = num_batches(len(split), batch_size)
    bar = tqdm(iterate_batches(split, batch_size, shuffle=True, generator=generator), total=steps,
               desc=f"epoch {epoch}", unit="batch", disable=None, leave=False, file=sys.stderr)
    for step, (images, labels) in enumerate(bar, start=1):
        x, y = engine.inputs(images), engine.targets(labels)
        optimizer.zero_grad()
        logits = model(x)
        loss = engine.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        value = float(loss.item())
        if not math.isfinite(value):
            raise RunFailed(f"the loss became {value} at epoch {epoch}, step {step}: the run diverged; "
                            "try a lower --lr, or check the data's normalization")
        total += value * len(labels)
        seen += len(labels)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{total / seen:.3f}", refresh=False)
        stop.check()
    bar.close()
    return total / max(seen, 1)


def fit(cfg: TrainConfig, run, bundle, engine, model, optimizer, stop) -> dict:
    """Train for ``cfg.epochs`` epochs, recording each in the run folder; returns the summary."""
    import torch

    from deepdive.checkpoint import save_weights
    from deepdive.evaluate import evaluate_split
    from deepdive.runs import SUMMARY, WEIGHTS

    generator = torch.Generator().manual_seed(cfg.seed)
    summary = run.read_json(SUMMARY)
    train_seconds = 0.0
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        train_loss = train_one_epoch(engine, model, optimizer, bundle.train, cfg.batch_size, generator, epoch, stop)
        seconds = time.perf_counter() - start
        train_seconds += seconds
        test_loss, test_accuracy = evaluate_split(engine, model, bundle.test)
        record = {"epoch": epoch, "train_loss": train_loss, "test_loss": test_loss,
                  "test_accuracy": test_accuracy, "seconds": seconds,
                  "images_per_second": len(bundle.train) / seconds if seconds > 0 else None}
        if cfg.eval_train_mode:
            record["test_accuracy_train_mode"] = evaluate_split(engine, model, bundle.test, train_mode=True)[1]
        run.append_metrics(record)
        save_weights(run.file(WEIGHTS), engine.weights(model))
        summary.update(epochs=epoch, train_loss=train_loss, test_loss=test_loss, test_accuracy=test_accuracy,
                       train_seconds=train_seconds, images_per_second=len(bundle.train) * epoch / train_seconds)
        if cfg.eval_train_mode:
            summary["test_accuracy_train_mode"] = record["test_accuracy_train_mode"]
        run.write_json(SUMMARY, summary)
        log.info("epoch %d/%d  train loss %.4f  test loss %.4f  test acc %.2f%%  %.1fs  %.0f img/s",
                 epoch, cfg.epochs, train_loss, test_loss, 100 * test_accuracy, seconds,
                 record["images_per_second"] or 0)
    summary["status"] = "completed"
    run.write_json(SUMMARY, summary)
    return summary


def run_training(cfg: TrainConfig, overwrite: bool = False) -> dict:
    """Everything ``deepdive train`` does: data, engine, model, optimizer, run folder, fit."""
    import torch

    from deepdive.data import prepare_data
    from deepdive.data.pipeline import Normalizer
    from deepdive.engines import make_engine
    from deepdive.models import build_model
    from deepdive.optim import build_optimizer
    from deepdive.runs import CONFIG, MODEL_INFO, SUMMARY, RunDir, default_run_dir
    from deepdive.signals import catch_stop_signals

    threads = set_threads(cfg.threads)
    out = cfg.out or str(default_run_dir(cfg.model, cfg.dataset))
    RunDir.check_free(out, overwrite)  # fail before the (slow) data loading
    bundle = prepare_data(cfg)
    normalizer = Normalizer(bundle.mean, bundle.std, bundle.input_shape[0])
    engine = make_engine(cfg.engine, cfg.device, normalizer)
    seed_everything(cfg.seed)
    model = engine.build(build_model(cfg.model, engine.nn, engine.F, bundle.input_shape, bundle.num_classes,
                                     article_exact=cfg.article_exact))
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay,
                                optim=engine.optim)
    run = RunDir.create(out, overwrite=overwrite)
    cfg.out = out
    run.write_json(CONFIG, cfg.to_dict())
    run.write_json(MODEL_INFO, {
        "model": cfg.model, "engine": cfg.engine, "classes": bundle.classes,
        "input_shape": list(bundle.input_shape), "mean": list(bundle.mean), "std": list(bundle.std),
        "article_exact": cfg.article_exact})
    device = str(getattr(engine, "device", "cpu"))
    summary = {"status": "running", "run": str(run.path), "model": cfg.model, "dataset": cfg.dataset,
               "engine": cfg.engine, "epochs": 0, "test_accuracy": None, "test_loss": None,
               "train_seconds": 0.0, "images_per_second": None, "train_examples": len(bundle.train),
               "test_examples": len(bundle.test), "device": device, "threads": threads,
               "torch_version": torch.__version__, "deepdive_version": __version__}
    run.write_json(SUMMARY, summary)
    log.info("training %s on %s (%d train / %d test images, %s) -> %s", cfg.model, cfg.dataset,
             len(bundle.train), len(bundle.test), device, run.path)

    with catch_stop_signals() as stop:
        try:
            return fit(cfg, run, bundle, engine, model, optimizer, stop)
        except RunFailed:
            _set_status(run, "failed")
            raise
        except (Interrupted, KeyboardInterrupt):
            _set_status(run, "interrupted")
            raise
        except OSError as exc:  # disk full, folder removed, ...: the run failed, the input was fine
            _set_status(run, "failed")
            raise RunFailed(f"writing to the run folder {run.path} failed ({exc.strerror or exc}): "
                            "free disk space or choose another --out") from None


def _set_status(run, status: str) -> None:
    from deepdive.runs import SUMMARY

    try:
        summary = run.read_json(SUMMARY)
        summary["status"] = status
        run.write_json(SUMMARY, summary)
    except Exception as exc:  # the folder may be what failed; the original error matters more
        log.warning("warning: could not record status %r in %s (%s)", status, run.path, exc)
