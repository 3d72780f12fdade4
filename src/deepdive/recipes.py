"""Named recipes: presets of model + optimizer + schedule + augmentation + evaluation.

A recipe fills in config values the user did not give; every flag still
overrides it. ``deepdive list`` shows them. ``values`` hold everywhere;
``cpu``/``cuda`` adjust them to the device the run trains on (a CPU learns
more per second from smaller batches and a narrower network; a GPU wants large
batches), and the resolved values are what config.json records. On a CPU
with native bf16 (AVX512-BF16, AMX) the recipes train under bf16 autocast,
1.6-1.8x the fp32 throughput there (bench/cpu_precision.py); elsewhere bf16 is emulated (expected slower,
not measured), so they stay in fp32.
"""
from __future__ import annotations

RECIPES = {
    "fast": {
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
    },
    "sprint": {
        "description": "the fast recipe sized for time-to-accuracy on a CPU: fastnet 32/64/128, batch 128, "
                       "2 epochs (about 75% on CIFAR-10 after one)",
        "values": None,  # the fast recipe's, with SPRINT on top (filled in below)
    },
}


SPRINT = {"batch_size": 128, "lr": 0.4, "epochs": 2, "widths": [32, 64, 128]}
RECIPES["sprint"]["values"] = {**RECIPES["fast"]["values"], **SPRINT}


def recipe_values(name: str, device: str) -> dict:
    """The recipe's values for a run on ``device`` ("auto" resolves to cuda when one is present)."""
    recipe = RECIPES[name]
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    values = {**recipe["values"], **recipe.get(device, {})}
    if device == "cpu":
        from deepdive.engines import cpu_has_native_bf16
        values["amp"] = cpu_has_native_bf16()
    return values
