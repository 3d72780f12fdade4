"""``deepdive.scratch.nn.functional``: the functions the article calls through ``F``."""
from __future__ import annotations

import numpy as np

from deepdive.scratch import conv, ops
from deepdive.scratch.tensor import Tensor


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _targets(t) -> np.ndarray:
    t = t.data if isinstance(t, Tensor) else np.asarray(t)
    return t.astype(np.int64, copy=False)


def relu(x):
    return ops.ReLU.apply(_t(x))


def sigmoid(x):
    return ops.Sigmoid.apply(_t(x))


def tanh(x):
    return ops.Tanh.apply(_t(x))


def log_softmax(x, dim=-1):
    return ops.LogSoftmax.apply(_t(x), axis=dim)


def softmax(x, dim=-1):
    return log_softmax(x, dim).exp()


def cross_entropy(logits, targets, reduction: str = "mean", label_smoothing: float = 0.0):
    """Mean (or summed) −log softmax(logits)[target]: softmax and log fused for stability.

    With label smoothing ε the target is (1 − ε)·one-hot + ε/K on each of the K classes,
    as in torch: L = (1 − ε)·(−log p_y) + ε·mean_k(−log p_k).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
    hard = ops.CrossEntropy.apply(_t(logits), _targets(targets), reduction=reduction)
    if not label_smoothing:
        return hard
    uniform = -log_softmax(logits, dim=1).mean(axis=1)  # mean over classes of −log p_k, one per example
    uniform = uniform.mean() if reduction == "mean" else uniform.sum() if reduction == "sum" else uniform
    return hard * (1 - label_smoothing) + uniform * label_smoothing


def nll_loss(log_probs, targets, reduction: str = "mean"):
    picked = _t(log_probs)[np.arange(len(log_probs)), _targets(targets)]
    losses = -picked
    return losses.mean() if reduction == "mean" else losses.sum() if reduction == "sum" else losses


def linear(x, weight, bias=None):
    """y = x Wᵀ + b (PyTorch's weight layout: out_features × in_features)."""
    y = _t(x) @ weight.T
    return y + bias if bias is not None else y


def dropout(x, p: float = 0.5, training: bool = True, mask=None):
    """Zero each element with probability p and scale the rest by 1/(1−p) (inverted dropout).

    ``mask`` supplies the kept/zeroed pattern (0/1) instead of drawing one, so
    two engines can share masks; it is drawn from NumPy's global generator otherwise.
    """
    x = _t(x)
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    if mask is None:
        mask = np.random.random_sample(x.shape) >= p
    scaled = np.asarray(mask, dtype=x.dtype) * np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
    return ops.MaskMultiply.apply(x, scaled)


def conv2d(x, weight, bias=None, stride=1, padding=0):
    return conv.Conv2d.apply(_t(x), weight, bias, stride=stride, padding=padding)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    return conv.MaxPool2d.apply(_t(x), kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    return conv.AvgPool2d.apply(_t(x), kernel_size=kernel_size, stride=stride, padding=padding)


def adaptive_avg_pool2d(x, output_size):
    return conv.AdaptiveAvgPool2d.apply(_t(x), output_size=output_size)
