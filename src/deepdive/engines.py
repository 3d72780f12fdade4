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


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU computes bf16 in hardware (AVX512-BF16 or AMX).

    oneDNN then trains fastnet 1.6-1.8x faster than in fp32 (``bench/cpu_precision.py``
    on a 2-core AMD EPYC with AVX512-BF16: 64/128/256, batch 128, 394 -> 714 img/s);
    without it oneDNN emulates bf16, which is expected to be slower than fp32
    (no such CPU was at hand to measure), so recipes leave it off.
    """
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


class TorchEngine:
    name = "torch"
    eval_batch_size = 500

    def __init__(self, device: str = "cpu", normalizer=None, channels_last: bool = False, amp: bool = False):
        import torch
        import torch.nn.functional as F
        import torch.optim as optim
        from torch import nn

        self.torch, self.nn, self.F, self.optim = torch, nn, F, optim
        self.device = torch.device(device)
        self.normalizer = normalizer
        self.channels_last = channels_last
        self.amp = amp  # bf16 autocast (on a CPU, worth it only with native bf16: see cpu_has_native_bf16)

    def build(self, model):
        model = model.to(self.device)
        return model.to(memory_format=self.torch.channels_last) if self.channels_last else model

    def inputs(self, images):
        x = self.normalizer(images.to(self.device, non_blocking=True))
        return x.contiguous(memory_format=self.torch.channels_last) if self.channels_last else x

    def targets(self, labels):
        return labels.to(self.device, non_blocking=True)

    def autocast(self):
        import contextlib
        if not self.amp:
            return contextlib.nullcontext()
        return self.torch.autocast(device_type=self.device.type, dtype=self.torch.bfloat16)

    def cross_entropy(self, logits, targets, reduction: str = "mean", label_smoothing: float = 0.0):
        return self.F.cross_entropy(logits.float(), targets, reduction=reduction, label_smoothing=label_smoothing)

    def no_grad(self):
        return self.torch.no_grad()

    def correct(self, logits, targets) -> int:
        return int((logits.argmax(dim=1) == targets).sum().item())

    def weights(self, model) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}

    def load_weights(self, model, arrays: dict[str, np.ndarray]) -> None:
        state = {k: self.torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        model.load_state_dict(state)

    def optimizer_state(self, optimizer) -> dict:
        return optimizer.state_dict()

    def load_optimizer_state(self, optimizer, state: dict) -> None:
        optimizer.load_state_dict(state)

    def clip_grad_norm(self, model, max_norm: float) -> float:
        return float(self.torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))


class ScratchEngine:
    """The from-scratch NumPy engine behind the same interface (CPU only).

    Batches come from the same pipeline as the torch engine's (so both see the
    very same normalized numbers) and are handed over as NumPy arrays.
    """

    name = "scratch"
    eval_batch_size = 100  # im2col matrices grow with the batch: keep evaluation's memory modest
    device = "cpu"

    def __init__(self, normalizer=None, dtype=np.float32):
        import deepdive.scratch as scratch
        import deepdive.scratch.nn as nn
        import deepdive.scratch.optim as optim

        self.scratch, self.nn, self.F, self.optim = scratch, nn, nn.functional, optim
        self.normalizer, self.dtype = normalizer, dtype
        # The pipeline's few torch ops (batch indexing, normalization) run on one thread: torch's
        # OpenMP workers spin after each parallel op and starve NumPy's BLAS threads (measured on
        # 2 cores: 14 ms instead of 0.9 ms per simplenet step).
        import torch
        torch.set_num_threads(1)

    def build(self, model):
        return model.to_dtype(self.dtype)

    def inputs(self, images):
        return self.scratch.Tensor(self.normalizer(images).numpy().astype(self.dtype, copy=False))

    def targets(self, labels):
        return labels.numpy()

    def cross_entropy(self, logits, targets, reduction: str = "mean", label_smoothing: float = 0.0):
        return self.F.cross_entropy(logits, targets, reduction=reduction)

    def autocast(self):
        import contextlib
        return contextlib.nullcontext()

    def no_grad(self):
        return self.scratch.no_grad()

    def correct(self, logits, targets) -> int:
        return int((logits.data.argmax(axis=1) == targets).sum())

    def weights(self, model) -> dict[str, np.ndarray]:
        return dict(model.state_dict())

    def load_weights(self, model, arrays: dict[str, np.ndarray]) -> None:
        model.load_state_dict(arrays)

    def optimizer_state(self, optimizer) -> dict:
        from deepdive.state import numpy_tree_to_torch
        return numpy_tree_to_torch(optimizer.state_dict())

    def load_optimizer_state(self, optimizer, state: dict) -> None:
        from deepdive.state import torch_tree_to_numpy
        optimizer.load_state_dict(torch_tree_to_numpy(state))

    def clip_grad_norm(self, model, max_norm: float) -> float:
        """Scale all gradients by min(1, max_norm / ‖g‖₂), ‖g‖₂ over every parameter together (as torch)."""
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        total = float(np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads)))
        scale = max_norm / (total + 1e-6)
        if scale < 1:
            for p in model.parameters():
                if p.grad is not None:
                    p.grad = p.grad * p.grad.dtype.type(scale)
        return total


def make_engine(name: str, device: str, normalizer, channels_last: bool = False, amp: bool = False):
    if name == "torch":
        return TorchEngine(resolve_device(device), normalizer, channels_last=channels_last, amp=amp)
    if name == "scratch":
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
