"""Named recipes: presets of model + optimizer + schedule + augmentation + evaluation.

A recipe sits between the defaults and everything the user says: the order is
defaults < recipe < ``--config`` file < flags given (``config.resolve.resolve_config``).
``values`` hold everywhere; ``cpu``/``cuda`` adjust them to the device the run
trains on (a CPU learns more per second from smaller batches and a narrower
network; a GPU wants large batches). Every value carries its reason in
``reasons``, the way a well-documented hyperparameter table does; ``deepdive
list --json`` shows them. On a CPU with native bf16 (AVX512-BF16, AMX) the
recipes train under bf16 autocast, 1.6-1.8x the fp32 throughput there
(bench/cpu_precision.py); elsewhere bf16 is emulated (expected slower, not
measured), so they stay in fp32.
"""
from __future__ import annotations

from deepdive.config.ladder import ARTICLE_VALUES, rung_recipes

ARTICLE = {
    "description": "the article's experiment: article-cnn on CIFAR-10, batch 16, Adam 1e-3, 10 epochs, the "
                   "MNIST normalization its script used, accuracy also measured in train mode as it measured",
    "values": dict(ARTICLE_VALUES),
    "reasons": {
        "model": "the article's Net, layer for layer",
        "dataset": "the article trains on CIFAR-10",
        "optimizer": "the article's optim.Adam",
        "lr": "the article's lr=0.001",
        "batch_size": "the article's DataLoader(batch_size=16)",
        "epochs": "the article's range(10)",
        "normalization": "the article's script normalizes CIFAR's three channels with MNIST's (0.1307, 0.3081)",
        "eval_train_mode": "the article measured its 61.2% without net.eval(), dropout active",
    },
    # what the article published: its loss printout per epoch and its test accuracy (train mode)
    "published": {"train_losses": [1.872, 1.604, 1.451, 1.347, 1.273, 1.218, 1.169, 1.132, 1.098, 1.070],
                  "test_accuracy": 0.612},
}

FAST = {
    "description": "fastnet (whitened, BN/GELU, dirac init), Nesterov SGD + decoupled weight decay, "
                   "warm-up then linear decay, label smoothing 0.2, EMA of weights, crop + alternating flip, "
                   "flip+shift TTA; batch 128 and widths 64/128/256 on a CPU, batch 1024 on a GPU; "
                   "bf16 autocast on a GPU and on CPUs with native bf16",
    "values": {"model": "fastnet", "optimizer": "nesterov", "lr": 0.2, "momentum": 0.85,
               "weight_decay": 5e-3, "decoupled_wd": True, "batch_size": 512, "epochs": 8,
               "schedule": "warmup-linear", "warmup": 0.15, "label_smoothing": 0.2, "ema": 0.98,
               "augment": "crop-altflip", "crop_pad": 2, "tta": "flip-shift", "widths": [64, 256, 256],
               "whiten": True},
    "cpu": {"batch_size": 128, "lr": 0.4, "widths": [64, 128, 256]},
    "cuda": {"batch_size": 1024, "lr": 0.4, "amp": True, "epochs": 10},
    "cpu_bf16": True,  # amp on a CPU exactly when it computes bf16 natively
    "reasons": {
        "model": "whitening + BatchNorm + dirac init train from the first step; the loop is compute-bound on it",
        "optimizer": "Nesterov SGD generalizes better than Adam on small CNNs and its look-ahead tolerates high lr",
        "lr": "0.2 at batch 512; 0.4 at batch 128 (CPU) / 1024 (GPU), found by sweeps (README, benchmarks)",
        "momentum": "0.85: slightly below 0.9, steadier with the high lr and short schedule",
        "weight_decay": "5e-3 decoupled (θ ← θ(1 − ηλ)): scales with the lr schedule, only on conv/linear weights",
        "decoupled_wd": "decay independent of momentum's velocity, so lr and decay can be tuned apart",
        "batch_size": "512 generic; 128 on a CPU (more updates per second: 87.4% vs 87.1% in 600 s), "
                      "1024 on a GPU (fills it)",
        "epochs": "8 generic; 10 on a GPU; a CPU run is usually bounded by --time-budget instead",
        "schedule": "linear decay to 0 ends training at the flat minimum the budget allows",
        "warmup": "15% warm-up protects BatchNorm statistics and the whitened layer's scale at high lr",
        "label_smoothing": "0.2 tempers the overconfidence of a small network trained for few epochs",
        "ema": "averaging the last steps' weights (decay 0.98) smooths the final noisy iterate",
        "augment": "crop + alternating flip: every image is seen both ways over two epochs, lower variance",
        "crop_pad": "2-pixel translation: enough for 32x32 images, more hurts at few epochs",
        "tta": "flip + one-pixel shift views, logits averaged: four forward passes per test image",
        "widths": "64/256/256 on a GPU; 64/128/256 on a CPU, where the last blocks dominate the time",
        "whiten": "a frozen whitening layer starts the network from decorrelated inputs",
        "amp": "bf16 autocast on tensor cores (GPU) or native bf16 (CPU): 1.6-1.8x the fp32 throughput",
    },
}

SPRINT = {
    "description": "the fast recipe sized for time-to-accuracy on a CPU: fastnet 32/64/128, batch 128, "
                   "2 epochs (about 75% on CIFAR-10 after one)",
    "values": {**FAST["values"], "batch_size": 128, "lr": 0.4, "epochs": 2, "widths": [32, 64, 128]},
    "cpu_bf16": True,
    "reasons": {**FAST["reasons"],
                "batch_size": "128: many updates per second on a CPU",
                "lr": "0.4 at batch 128, as the fast recipe on a CPU",
                "epochs": "2: the point is the first minute, not the last point of accuracy",
                "widths": "32/64/128: a quarter of the fast recipe's compute per image"},
}

RECIPES = {"article": ARTICLE, "fast": FAST, "sprint": SPRINT, **rung_recipes()}


def recipe_values(name: str, device: str) -> dict:
    """The recipe's values for a run on ``device`` ("auto" resolves to cuda when one is present)."""
    recipe = RECIPES[name]
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    values = {**recipe["values"], **recipe.get(device, {})}
    if device == "cpu" and recipe.get("cpu_bf16"):
        from deepdive.config.machine import cpu_has_native_bf16
        values["amp"] = cpu_has_native_bf16()
    return values
