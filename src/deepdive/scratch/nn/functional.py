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


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    """One loss per example -> their mean, their sum, or all of them ('none')."""
    return losses.mean() if reduction == "mean" else losses.sum() if reduction == "sum" else losses


def nll_loss(log_probs, targets, reduction: str = "mean"):
    """NLL = −(1/N) Σᵢ log pᵢ[yᵢ] ('sum': no 1/N, 'none': −log pᵢ[yᵢ] each), log pᵢ[yᵢ] gathered by indexing."""
    _check_reduction(reduction)
    log_probs = _t(log_probs)
    picked = log_probs[np.arange(len(log_probs)), _targets(targets)]  # an Index node: the gather
    if reduction == "none":
        return -picked
    with np.errstate(divide="ignore"):  # no examples: the mean is nan, as in torch
        scale = np.float64(-1) / (len(picked) if reduction == "mean" else 1)
    return picked.sum() * scale


def cross_entropy(logits, targets, reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross-entropy = NLL(log_softmax(logits)): log_softmax keeps it finite for any logits.

    With label smoothing ε the target is (1 − ε)·one-hot + ε/K on each of the K classes,
    as in torch: L = (1 − ε)·(−log p_y) + ε·mean_k(−log p_k), each term reduced alike.
    """
    _check_reduction(reduction)
    log_probs = log_softmax(logits, dim=1)
    hard = nll_loss(log_probs, targets, reduction)
    if not label_smoothing:
        return hard
    uniform = _reduce(-log_probs.mean(axis=1), reduction)  # mean over classes of −log p_k, one per example
    return hard * (1 - label_smoothing) + uniform * label_smoothing


def linear(x, weight, bias=None):
    """y = x Wᵀ + b (PyTorch's weight layout: out_features × in_features)."""
    y = _t(x) @ weight.T
    return y + bias if bias is not None else y


def dropout(x, p: float = 0.5, training: bool = True, mask=None):
    """dropout(x) = x · mask/(1−p): each element zeroed with probability p, the rest scaled (inverted dropout).

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
    return x * scaled  # a product with a constant: ∂L/∂x = g · mask/(1 − p)


def conv2d(x, weight, bias=None, stride=1, padding=0):
    return conv.Conv2d.apply(_t(x), weight, bias, stride=stride, padding=padding)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    return conv.MaxPool2d.apply(_t(x), kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    return conv.AvgPool2d.apply(_t(x), kernel_size=kernel_size, stride=stride, padding=padding)


def adaptive_avg_pool2d(x, output_size):
    return conv.AdaptiveAvgPool2d.apply(_t(x), output_size=output_size)
