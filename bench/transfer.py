"""Transfer learning, offline: does a network pretrained on some classes help on others?

    python bench/transfer.py --data-dir DIR [--budget 300] [--epochs 15]

1. Pretrain fastnet (the fast recipe) on CIFAR-10's classes 0-4 - airplane, automobile, bird, cat,
   deer: all 25,000 training images - for a ``--budget``-second CPU training budget.
2. Train on 500 training images of classes 5-9 - dog, frog, horse, ship, truck - twice, with the same
   recipe, epochs and seed: once initialised from step 1's run (``--init-from``: the head is replaced,
   the classes differ), once from scratch.
3. Report both on the 5,000 test images of classes 5-9, side by side, and one JSON line.

No download and no pretrained file is needed: the "pretrained" network is made here. Each run is a
plain ``deepdive train`` command (printed), so every figure can be reproduced by hand.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_runs import train  # noqa: E402


def run(args: list[str]) -> dict:
    return train(args, "transfer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data", help="holds cifar-10-batches-py/")
    parser.add_argument("--budget", type=float, default=300, help="pretraining seconds (default 300)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs on the 500 images (default 15)")
    parser.add_argument("--images", type=int, default=500, help="training images of classes 5-9 (default 500)")
    parser.add_argument("-b", "--batch-size", type=int, default=50, help="batch on the 500 images (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="keep the three run folders here (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="deepdive-transfer-"))
    common = ["--recipe", "fast", "--dataset", "cifar10", "--data-dir", args.data_dir, "--no-download",
              "--device", "cpu", "--seed", str(args.seed)]
    pretrain = run([*common, "--classes", "0,1,2,3,4", "--time-budget", str(args.budget),
                      "--out", str(root / "pretrain-classes-0-4"), "--overwrite"])
    small = [*common, "--classes", "5,6,7,8,9", "--limit-train", str(args.images), "--epochs", str(args.epochs),
             "-b", str(args.batch_size)]
    tuned = run([*small, "--init-from", pretrain["run"], "--out", str(root / "finetuned-classes-5-9"),
                   "--overwrite"])
    scratch = run([*small, "--out", str(root / "scratch-classes-5-9"), "--overwrite"])
    print(f"pretraining on classes 0-4 ({pretrain['train_examples']} images, {args.budget:g} s budget): "
          f"{100 * pretrain['test_accuracy']:.2f}% on their {pretrain['test_examples']} test images")
    print(f"{args.images} images of classes 5-9, {args.epochs} epochs, batch {args.batch_size}, the fast recipe; "
          f"tested on {tuned['test_examples']} images:")
    print(f"  from scratch                       {100 * scratch['test_accuracy']:6.2f}%")
    print(f"  initialised from the 0-4 run       {100 * tuned['test_accuracy']:6.2f}%   "
          f"({100 * (tuned['test_accuracy'] - scratch['test_accuracy']):+.2f} points)")
    print(json.dumps({"pretrain_accuracy": pretrain["test_accuracy"], "scratch_accuracy": scratch["test_accuracy"],
                      "finetuned_accuracy": tuned["test_accuracy"], "images": args.images, "epochs": args.epochs,
                      "budget_seconds": args.budget, "test_images": tuned["test_examples"]}))


if __name__ == "__main__":
    main()
