"""The ladder: from the article's experiment to the fast recipe, one change per rung (``deepdive ladder``).

Each rung is a named recipe, ``ladder-N`` (``deepdive train --recipe ladder-3``), made of the rung below
plus exactly one change, with the change's reason - the article's recipe at the bottom, the ``fast`` recipe
at the top (a test holds the top rung equal to ``--recipe fast`` on both devices). The rungs are
declared here as differences; ``rung_recipes`` turns them into whole recipes for ``config.recipes``.

A rung's ``reads`` names the summary figure it is judged by: the article measured its accuracy with
dropout still active, so rung 0 reads ``test_accuracy_train_mode``; rung 1 changes only how the
same runs are measured, so it shares rung 0's runs (``same_runs_as_below``).

Scales fix what every rung trains on, so rungs compare: the same subset, epochs and test images.
``small`` finishes all rungs on a 2-core CPU in about a quarter of an hour (three seeds);
``full`` is the real thing (the article's 10 epochs on all of CIFAR-10); ``tiny`` is a smoke check.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rung:
    title: str  # what the rung is, in a few words
    change: dict  # the values changed from the rung below (the whole recipe for rung 0)
    reason: str  # why this change, in one sentence
    cuda: dict = field(default_factory=dict)  # the change's values on a GPU, where they differ
    reads: str = "test_accuracy"  # the summary figure the rung is judged by
    same_runs_as_below: bool = False  # the change is only in how the runs are measured
    bf16_on_cpu: bool = False  # from this rung on: bf16 autocast on a CPU exactly when it computes bf16 natively


ARTICLE_VALUES = {"model": "article-cnn", "dataset": "cifar10", "optimizer": "adam", "lr": 1e-3, "batch_size": 16,
                  "epochs": 10, "normalization": "mnist", "eval_train_mode": True}

RUNGS: tuple[Rung, ...] = (
    Rung("the article's experiment", ARTICLE_VALUES,
         "article-cnn, MNIST's normalization on CIFAR's channels, Adam 1e-3, batch 16, 10 epochs, accuracy "
         "measured with dropout still on - as the article's script did", reads="test_accuracy_train_mode"),
    Rung("eval mode", {"eval_train_mode": False},
         "the article never calls net.eval(): dropout silences half the features at test time; the same runs, "
         "measured as they should be", same_runs_as_below=True),
    Rung("CIFAR's own normalization", {"normalization": "dataset"},
         "the article normalizes with MNIST's mean and std (0.1307, 0.3081): CIFAR's own per-channel statistics "
         "give the first layer zero-mean, unit-variance inputs"),
    Rung("batch 128, warm-up and linear decay", {"batch_size": 128, "lr": 3e-3, "schedule": "warmup-linear",
                                                 "warmup": 0.15},
         "8x the batch does 8x fewer, better-averaged steps and uses the cores better; a warm-up protects the "
         "first steps at the higher lr (Adam 3e-3, ~sqrt(8) x), the decay ends at a quiet minimum",
         cuda={"batch_size": 1024, "lr": 4e-3}),
    Rung("bf16 autocast", {"amp": True},
         "bfloat16 matrix products where the hardware computes them natively (GPU tensor cores, CPUs with "
         "AVX512-BF16 or AMX): the same steps in less time; elsewhere this rung equals the one below",
         bf16_on_cpu=True),
    Rung("crop + alternating flip", {"augment": "crop-altflip", "crop_pad": 2},
         "random 2-pixel translations and mirror images flipped every other epoch: more distinct images from "
         "the same data, the classic cure for a small network's overfitting"),
    Rung("BatchNorm and wider convolutions", {"model": "fastnet", "widths": [64, 128, 256], "whiten": False,
                                              "identity_init": False},
         "conv-pool-BatchNorm-GELU blocks, 64/128/256 channels: normalized activations let the net train fast "
         "and deep; pooling early keeps the expensive convolutions small",
         cuda={"widths": [64, 256, 256]}),
    Rung("Nesterov SGD, label smoothing", {"optimizer": "nesterov", "lr": 0.4, "momentum": 0.85,
                                           "weight_decay": 5e-3, "decoupled_wd": True, "label_smoothing": 0.2},
         "Nesterov momentum at a high lr with decoupled weight decay generalizes better than Adam on small "
         "CNNs; smoothing the targets (0.2) tempers a short run's overconfidence"),
    Rung("patch whitening, identity init", {"whiten": True, "identity_init": True},
         "a frozen first layer that decorrelates 2x2 patches and blocks that start as the identity: the "
         "network trains from its first step"),
    Rung("weight averaging (EMA)", {"ema": 0.98},
         "evaluating an exponential moving average of the weights (decay 0.98) smooths the last noisy steps"),
    Rung("test-time augmentation", {"tta": "flip-shift"},
         "average the logits of the image, its mirror and one-pixel shifts: four views per test image"),
)
# The top rung is the fast recipe (tests/test_ladder.py holds them equal): the rung below it is its last change.

SCALES = {
    "tiny": {"limit_train": 200, "limit_test": 100, "epochs": 1,
             "about": "a smoke check: 200 training and 100 test images, one epoch"},
    "small": {"limit_train": 2500, "limit_test": 2000, "epochs": 4,
              "about": "a class-balanced 2,500 of CIFAR-10's 50,000 training images (250 per class), 4 epochs, "
                       "2,000 test images (200 per class); every rung the same"},
    "full": {"limit_train": None, "limit_test": None, "epochs": 10,
             "about": "all 50,000 training and 10,000 test images, the article's 10 epochs for every rung"},
}
SCALE_KEYS = ("limit_train", "limit_test", "epochs")

REFERENCES = (
    {"name": "the article", "test_accuracy": 0.612, "train_seconds": None,
     "source": "the article's published result: article-cnn, 10 epochs, measured in train mode"},
    {"name": "airbench94 (official data)", "test_accuracy": 0.9401, "train_seconds": 3.09,
     "source": "airbench's published mean of 1,000 runs on the official CIFAR-10, one A100, compiled "
               "(Jordan, '94% on CIFAR-10 in 3.29 seconds on a single GPU', 2024); not this machine or data"},
    {"name": "airbench94 on this copy (CPU)", "test_accuracy": 0.9059, "train_seconds": 433.0,
     "source": "airbench94 (PyPI airbench 0.1.8) on this JPEG copy of CIFAR-10, a 2-core CPU, bf16, seed 0, "
               "with its TTA: 90.59% after 9.9 epochs in 433 s of training (issue 23's measurement; "
               "bench/vs_airbench_cpu.py re-measures it, and --peer FILE takes its result)"},
)


def rung_name(index: int) -> str:
    return f"ladder-{index}"


def rung_values(index: int) -> tuple[dict, dict, dict]:
    """Rung ``index``'s whole recipe: (values, values on a GPU where they differ, reasons), the changes of
    rungs 0..index applied in order."""
    values: dict = {}
    cuda: dict = {}
    reasons: dict = {}
    for rung in RUNGS[:index + 1]:
        values.update(rung.change)
        for key in rung.change:
            cuda.pop(key, None)
            reasons[key] = f"{rung.title}: {rung.reason}"
        cuda.update(rung.cuda)
    return values, cuda, reasons


def bf16_on_cpu(index: int) -> bool:
    return any(r.bf16_on_cpu for r in RUNGS[:index + 1])


def rung_recipes() -> dict:
    """``ladder-0`` ... ``ladder-N`` as recipes (``config.recipes.RECIPES`` takes them in)."""
    recipes = {}
    for i, rung in enumerate(RUNGS):
        values, cuda, reasons = rung_values(i)
        below = f"; one change from {rung_name(i - 1)}" if i else ""
        recipes[rung_name(i)] = {"description": f"ladder rung {i}: {rung.title}{below}", "values": values,
                                 "cuda": cuda, "cpu_bf16": bf16_on_cpu(i), "reasons": reasons}
    return recipes
