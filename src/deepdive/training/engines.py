"""Engines: what supplies tensors, modules, losses and optimizers to the training loop.

The loop (``training/loop.py``) is written against the ``Engine`` protocol below
only, so the same loop trains a model on PyTorch and on the from-scratch NumPy
engine. An option one engine cannot honour is refused by ``TrainConfig`` for
that engine, by name; none is silently ignored.
"""
from __future__ import annotations

import contextlib
from typing import Any, Protocol

import numpy as np

from deepdive.errors import UserError


class Engine(Protocol):
    """What the training loop, evaluation and loading ask of an engine."""

    name: str
    nn: Any  # module namespace the model families are built from (torch.nn or deepdive.scratch.nn)
    F: Any  # functional namespace (torch.nn.functional or deepdive.scratch.nn.functional)
    optim: Any  # optimizer classes (torch.optim or deepdive.scratch.optim)
    eval_batch_size: int

    def build(self, model): ...  # move/convert a freshly built model (device, dtype, memory format)
    def inputs(self, images): ...  # uint8 batch -> normalized engine array
    def targets(self, labels): ...
    def autocast(self): ...  # context: the forward pass's precision (bf16 or a no-op)
    def cross_entropy(self, logits, targets, reduction: str = "mean", label_smoothing: float = 0.0): ...
    def no_grad(self): ...
    def correct(self, logits, targets) -> int: ...
    def clip_grad_norm(self, model, max_norm: float) -> float: ...  # scale all grads to a global L2 norm
    def scale_(self, params, factor: float) -> None: ...  # θ ← factor·θ in place (decoupled weight decay)
    def weights(self, model) -> dict[str, np.ndarray]: ...
    def load_weights(self, model, arrays: dict[str, np.ndarray]) -> None: ...
    def optimizer_state(self, optimizer) -> dict: ...  # plain types only (state.pt is weights_only)
    def load_optimizer_state(self, optimizer, state: dict) -> None: ...


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
    traceable = True  # the model is a torch graph TensorBoard can trace

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

    def cpu_logits(self, logits):
        """Logits as a float32 torch tensor on the CPU, whatever computed them (the predictor's and the
        figures' common currency)."""
        return logits.float().cpu()

    def torch_module(self, model):
        """``model`` as a ``torch.nn.Module`` (this engine's models are), for export and ``Predictor.model``."""
        return model

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
        """torch casts saved state onto the parameters without comparing shapes: compare them here."""
        optimizer.load_state_dict(state)
        for group in optimizer.param_groups:
            for p in group["params"]:
                for key, value in optimizer.state.get(p, {}).items():
                    if self.torch.is_tensor(value) and value.dim() > 0 and value.shape != p.shape:
                        raise ValueError(f"optimizer state {key} has shape {tuple(value.shape)}, "
                                         f"its parameter {tuple(p.shape)}")

    def clip_grad_norm(self, model, max_norm: float) -> float:
        return float(self.torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))

    def scale_(self, params, factor: float) -> None:
        with self.torch.no_grad():
            self.torch._foreach_mul_(list(params), factor)


class ScratchEngine:
    """The from-scratch NumPy engine behind the same interface (CPU only).

    Batches come from the same pipeline as the torch engine's (so both see the
    very same normalized numbers) and are handed over as NumPy arrays.
    """

    name = "scratch"
    eval_batch_size = 100  # im2col matrices grow with the batch: keep evaluation's memory modest
    device = "cpu"
    amp = False  # no bf16 autocast here
    traceable = False  # no torch graph to trace (TensorBoard's model graph)

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

    def cpu_logits(self, logits):
        """NumPy logits as a float32 torch tensor (the predictor's and the figures' common currency)."""
        import torch
        return torch.as_tensor(np.asarray(logits.data, dtype=np.float32))

    def torch_module(self, model):
        """None: a scratch model is rebuilt on torch from its weights by whoever needs a ``torch.nn.Module``
        (``Predictor.model``)."""
        return None

    def inputs(self, images):
        return self.scratch.Tensor(self.normalizer(images).numpy().astype(self.dtype, copy=False))

    def targets(self, labels):
        return labels.numpy()

    def cross_entropy(self, logits, targets, reduction: str = "mean", label_smoothing: float = 0.0):
        return self.F.cross_entropy(logits, targets, reduction=reduction, label_smoothing=label_smoothing)

    def scale_(self, params, factor: float) -> None:
        for p in params:
            p.data *= p.data.dtype.type(factor)

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
        from deepdive.storage.state_file import numpy_tree_to_torch
        return numpy_tree_to_torch(optimizer.state_dict())

    def load_optimizer_state(self, optimizer, state: dict) -> None:
        from deepdive.storage.state_file import torch_tree_to_numpy
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
