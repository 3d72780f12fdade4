"""Batched augmentation: whole-batch tensor ops, no per-image Python, on CPU or GPU.

- random crop with reflect padding = translate each image by up to ``pad`` pixels;
- horizontal flip with probability 1/2;
- *alternating* flip: each image gets a random flip bit in the first epoch and its
  exact complement in every other epoch, so over two epochs every image is seen
  both ways (a lower-variance flip; an idea from the fast-training literature).

Applied to normalized float batches. Randomness comes from one ``torch.Generator`` (``state()``/``load_state()`` put it
in the training state, so a resumed run draws the same crops).
"""
from __future__ import annotations

import torch

from deepdive.config.names import AUGMENTATIONS


def translate(images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift image i by (dx[i], dy[i]) pixels, filling from a reflect-padded border."""
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="reflect")
    out = torch.empty_like(images)
    # one slice per distinct shift: at most (2·pad + 1)² groups, each a single tensor copy
    key = (dy + pad) * (2 * pad + 1) + (dx + pad)
    for k in torch.unique(key).tolist():
        idx = torch.nonzero(key == k).flatten()
        oy, ox = divmod(k, 2 * pad + 1)
        out[idx] = padded[idx, :, oy:oy + h, ox:ox + w]
    return out


class BatchAugmenter:
    def __init__(self, kind: str, pad: int, num_examples: int, seed: int, device="cpu"):
        if kind not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {kind!r}")
        self.kind, self.pad = kind, pad
        self.generator = torch.Generator().manual_seed(seed + 7919)
        base = torch.Generator().manual_seed(seed + 104729)
        # the first epoch's flip bit of every example; later epochs alternate it
        self.first_flips = torch.rand(num_examples, generator=base) < 0.5

    def state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def flips_for(self, index: torch.Tensor, epoch: int) -> torch.Tensor:
        """Alternating flip bits of examples ``index`` in (0-based) ``epoch``: epoch 0 random, then complemented."""
        bits = self.first_flips[index.cpu()]
        return bits if epoch % 2 == 0 else ~bits

    def __call__(self, images: torch.Tensor, index: torch.Tensor, epoch: int,
                 rows: tuple[int, int] | None = None) -> torch.Tensor:
        """``rows`` = (first, total): these images are rows [first, first + n) of a global batch of ``total``
        split among processes (training/ddp/); the draws are made for all ``total``, so each image gets what
        one process would give it and the generator moves as in one process."""
        if self.kind == "none":
            return images
        n = images.shape[0]
        first, total = rows if rows is not None else (0, n)
        if self.kind in ("flip", "crop-flip"):
            flips = (torch.rand(total, generator=self.generator) < 0.5)[first:first + n]
        else:
            flips = self.flips_for(index, epoch)
        shifts = None
        if self.kind.startswith("crop") and self.pad > 0:
            shifts = torch.randint(-self.pad, self.pad + 1, (2, total), generator=self.generator)[:, first:first + n]
        if n == 0:  # a process's empty share of a last batch smaller than the processes
            return images
        flips = flips.to(images.device)
        images = torch.where(flips[:, None, None, None], images.flip(3), images)
        if shifts is not None:
            shifts = shifts.to(images.device)
            images = translate(images, shifts[0], shifts[1], self.pad)
        return images
