"""Engines: what supplies tensors, modules, losses and optimizers to the training loop.

The loop in ``train.py`` is written against this small interface only, so the
same loop trains a model on PyTorch or on the from-scratch NumPy engine:

- ``nn``, ``F``, ``optim``: the namespaces models and optimizers are built from;
- ``inputs(uint8 batch)`` / ``targets(labels)``: a batch in the engine's own arrays;
- ``cross_entropy(logits, targets, reduction)``, ``no_grad()``, ``correct(logits, targets)``;
- ``weights(model)`` / ``load_weights(model, arrays)``: parameters as NumPy arrays.
"""
from __future__ import annotations

import contextlib

import numpy as np

from deepdive.errors import UserError


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available: use --device cpu or auto")
    return requested


class TorchEngine:
    name = "torch"
    eval_batch_size = 500

    def __init__(self, device: str = "cpu", normalizer=None):
        import torch
        import torch.nn.functional as F
        import torch.optim as optim
        from torch import nn

        self.torch, self.nn, self.F, self.optim = torch, nn, F, optim
        self.device = torch.device(device)
        self.normalizer = normalizer

    def build(self, model):
        return model.to(self.device)

    def inputs(self, images):
        return self.normalizer(images.to(self.device, non_blocking=True))

    def targets(self, labels):
        return labels.to(self.device, non_blocking=True)

    def cross_entropy(self, logits, targets, reduction: str = "mean"):
        return self.F.cross_entropy(logits, targets, reduction=reduction)

    def no_grad(self):
        return self.torch.no_grad()

    def correct(self, logits, targets) -> int:
        return int((logits.argmax(dim=1) == targets).sum().item())

    def weights(self, model) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}

    def load_weights(self, model, arrays: dict[str, np.ndarray]) -> None:
        state = {k: self.torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        model.load_state_dict(state)


def make_engine(name: str, device: str, normalizer):
    if name == "torch":
        return TorchEngine(resolve_device(device), normalizer)
    if name == "scratch":
        from deepdive.scratch.engine import ScratchEngine
        if device == "cuda":
            raise UserError("--engine scratch runs on the CPU only: use --device cpu or auto")
        return ScratchEngine(normalizer)
    raise KeyError(name)


@contextlib.contextmanager
def evaluation(model, train_mode: bool = False):
    """Put ``model`` in eval mode (or train mode, to measure as the article did), restoring it after."""
    was_training = model.training
    model.train(train_mode)
    try:
        yield
    finally:
        model.train(was_training)
