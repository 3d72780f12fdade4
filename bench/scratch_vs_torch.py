"""Training throughput of deepdive.scratch vs PyTorch on the CPU, side by side in one run.

    python bench/scratch_vs_torch.py --data-dir DIR [--steps N]

Same model code, same batches, same optimizer (Adam 1e-3), float32:
simplenet on Fashion-MNIST (batch 64) and article-cnn on CIFAR-10 (batch 16).
Targets: scratch >= 0.5x torch on simplenet, >= 0.25x on article-cnn.
Prints a table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from article_epoch import time_steps  # noqa: E402
from deepdive.config.train_config import TrainConfig  # noqa: E402
from deepdive.training.run_data import prepare_data  # noqa: E402
from deepdive.data.pipeline import Normalizer  # noqa: E402
from deepdive.training.engines import make_engine  # noqa: E402
from deepdive.models.registry import build_model  # noqa: E402
from deepdive.training.optim import build_optimizer  # noqa: E402
from deepdive.training.setup import seed_everything
from deepdive.training.threads import set_threads  # noqa: E402

CASES = [("simplenet", "fashion-mnist", 64, 0.5), ("article-cnn", "cifar10", 16, 0.25)]


def throughput(engine_name: str, model_name: str, bundle, batch: int, steps: int, threads: int) -> float:
    set_threads(threads)
    engine = make_engine(engine_name, "cpu", Normalizer(bundle.mean, bundle.std, bundle.input_shape[0]))
    seed_everything(0)
    model = engine.build(build_model(model_name, engine.nn, engine.F, bundle.input_shape, bundle.num_classes))
    optimizer = build_optimizer("adam", model.parameters(), 1e-3, optim=engine.optim)
    return batch / time_steps(engine, model, optimizer, bundle.train, batch, steps, warmup=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="./data", help="holds cifar-10-batches-py/ (Fashion-MNIST: Debian's files)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case (default 400 / 40)")
    args = parser.parse_args()
    threads = set_threads(None)
    results = {}
    print(f"scratch vs torch, CPU, {threads} threads, torch {torch.__version__}, Adam 1e-3, float32")
    print(f"{'model':12s} {'dataset':14s} {'batch':>5s} {'torch img/s':>12s} {'scratch img/s':>14s} "
          f"{'ratio':>6s} {'target':>7s}")
    for model_name, dataset, batch, target in CASES:
        steps = args.steps or (400 if model_name == "simplenet" else 40)
        cfg = TrainConfig(model=model_name, dataset=dataset, data_dir=args.data_dir, download=False,
                          limit_train=(steps + 10) * batch, limit_test=10)
        bundle = prepare_data(cfg)
        t = throughput("torch", model_name, bundle, batch, steps, threads)
        s = throughput("scratch", model_name, bundle, batch, steps, threads)
        ratio = s / t
        results[model_name] = {"dataset": dataset, "batch": batch, "torch_images_per_second": t,
                               "scratch_images_per_second": s, "ratio": ratio, "target": target,
                               "met": ratio >= target}
        print(f"{model_name:12s} {dataset:14s} {batch:5d} {t:12.0f} {s:14.0f} {ratio:6.2f} {target:7.2f}"
              f"{'' if ratio >= target else '  MISSED'}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
