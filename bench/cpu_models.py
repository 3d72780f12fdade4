"""A torchvision ResNet-18 beside fastnet on CIFAR-10, the same CPU budget each, one run.

    python bench/cpu_models.py --data-dir DIR [--budget 600] [--resnet-lr 0.1]

Both train with the fast recipe (Nesterov SGD, warm-up + linear decay over the budget, label smoothing,
EMA, crop + alternating flip, flip-shift TTA) for ``--budget`` seconds of training on the CPU, then are
tested on the 10,000 test images. ResNet-18 gets the small-input stem (``--small-input``: 3x3 stride-1
first convolution, no max-pool; 32x32 images stay 32x32) and a learning rate of its own
(``--resnet-lr``, 0.1 by default, the usual for batch 128 with BatchNorm ResNets; fastnet's 0.4 is
tuned to its dirac init and logit scaling). Prints accuracy, images/s and epochs done side by side,
then one JSON line. Run it on an otherwise idle machine: the budget is wall-clock.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_runs import train  # noqa: E402


def run(args: list[str]) -> dict:
    return train(args, "cpu_models")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data", help="holds cifar-10-batches-py/")
    parser.add_argument("--budget", type=float, default=600, help="training seconds per model (default 600)")
    parser.add_argument("--resnet-lr", type=float, default=0.1)
    parser.add_argument("--limit-test", type=int, help="fewer test images (smoke runs)")
    parser.add_argument("--out", help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="deepdive-cpu-models-"))
    # every core, stated: a thread count chosen from the load at start could differ between the two runs
    common = ["--recipe", "fast", "--dataset", "cifar10", "--data-dir", args.data_dir, "--no-download",
              "--device", "cpu", "--time-budget", str(args.budget), "--threads", str(os.cpu_count())]
    if args.limit_test:
        common += ["--limit-test", str(args.limit_test)]
    rows = {"fastnet": run([*common, "--out", str(root / "fastnet"), "--overwrite"]),
            "tv:resnet18 --small-input": run([*common, "--model", "tv:resnet18", "--small-input", "--lr",
                                                str(args.resnet_lr), "--out", str(root / "resnet18"),
                                                "--overwrite"])}
    print(f"CIFAR-10, {args.budget:g} s of CPU training each ({os.cpu_count()} cores), the fast recipe:")
    print(f"  {'model':<27} {'test acc':>8} {'img/s':>7} {'epochs':>7}")
    for name, s in rows.items():
        print(f"  {name:<27} {100 * s['test_accuracy']:7.2f}% {s['images_per_second']:7.0f} "
              f"{s.get('epochs_done', s['epochs']):7.2f}")
    print(json.dumps({name: {"test_accuracy": s["test_accuracy"], "images_per_second": s["images_per_second"],
                             "epochs_done": s.get("epochs_done")} for name, s in rows.items()}))


if __name__ == "__main__":
    main()
