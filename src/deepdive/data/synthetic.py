"""Synthetic, learnable image data generated on the fly, for tests and smoke runs.

Each class has a smooth random prototype image; examples are their class's
prototype plus noise, stored as uint8 like real data. A linear classifier
separates them well, so a few epochs must reach high accuracy: a failing
training loop shows up as a low score. The data depend only on the spec, never
on the training seed, so `evaluate` can regenerate them exactly.
"""
from __future__ import annotations

import torch

from deepdive.data.pipeline import Split

DATA_SEED = 1234


def make_synthetic(shape, classes: int, train: int, test: int) -> tuple[Split, Split, list[str]]:
    c, h, w = (int(s) for s in shape)
    gen = torch.Generator().manual_seed(DATA_SEED)
    coarse = torch.rand(classes, c, max(2, h // 4), max(2, w // 4), generator=gen)
    prototypes = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)

    def draw(n: int) -> Split:
        labels = torch.arange(n) % classes
        labels = labels[torch.randperm(n, generator=gen)]
        noise = torch.randn(n, c, h, w, generator=gen) * 0.15
        pixels = (prototypes[labels] * 0.7 + 0.15 + noise).clamp(0, 1)
        return Split((pixels * 255).round().to(torch.uint8), labels.to(torch.int64))

    return draw(int(train)), draw(int(test)), [f"class-{i}" for i in range(classes)]


def read_dataset(name: str, options) -> "Loaded":  # noqa: F821
    """The ``synthetic`` reader of ``data/datasets.py``."""
    from deepdive.data.datasets import Loaded
    s = options.synthetic
    return Loaded(*make_synthetic(s["shape"], s["classes"], s["train"], s["test"]))
