"""Throughput of the article's recipe on this machine, and its projected 10-epoch time.

    python bench/article_epoch.py --data-dir DIR [--steps 300]

The article's recipe: article-cnn on CIFAR-10, batch 16, Adam 1e-3, MNIST
normalization. Times ``--steps`` training steps (after a few warm-up steps) of
the same loop ``deepdive train`` runs and extrapolates to 10 epochs of 50,000
images. Prints a table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from deepdive.config.resolve import resolve_config
from deepdive.training.run_data import prepare_data  # noqa: E402
from deepdive.data.pipeline import iterate_batches  # noqa: E402
from deepdive.training.setup import build_components
from deepdive.training.threads import set_threads  # noqa: E402


def time_steps(engine, model, optimizer, split, batch_size: int, steps: int, warmup: int = 10) -> float:
    """Seconds per training step, measured over ``steps`` steps after ``warmup`` untimed ones."""
    gen = torch.Generator().manual_seed(0)
    batches = iterate_batches(split, batch_size, shuffle=True, generator=gen)
    model.train()
    start = None
    for i, (images, labels) in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        if i == warmup + steps:
            break
        x, y = engine.inputs(images), engine.targets(labels)
        optimizer.zero_grad()
        with engine.autocast():  # bf16 when the engine was built with amp; a no-op otherwise
            logits = model(x)
        loss = engine.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        loss.item()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    threads = set_threads(args.threads)
    cfg = resolve_config({"recipe": "article", "data_dir": args.data_dir, "download": False, "device": "cpu",
                          "limit_train": (args.steps + 20) * 16})
    bundle = prepare_data(cfg)
    parts = build_components(cfg, bundle)
    per_step = time_steps(parts.engine, parts.model, parts.optimizer, bundle.train, cfg.batch_size, args.steps)
    images_per_second = cfg.batch_size / per_step
    ten_epochs = cfg.epochs * 50000 / images_per_second
    print(f"article recipe (article-cnn, batch 16, Adam 1e-3), CPU, {threads} threads, torch {torch.__version__}")
    print(f"  {per_step * 1000:.1f} ms/step  {images_per_second:.0f} images/s")
    print(f"  projected 10 epochs of 50,000 images: {ten_epochs:.0f} s ({ten_epochs / 60:.1f} min)")
    print(json.dumps({"images_per_second": images_per_second, "seconds_per_step": per_step,
                      "projected_seconds_10_epochs": ten_epochs, "threads": threads,
                      "torch_version": torch.__version__}))


if __name__ == "__main__":
    main()
