"""Primitives that sum or pick over axes: the matrix product, Sum, Max and LogSoftmax.

Notation: y = f(x), g = ∂L/∂y arriving from above; each backward returns
∂L/∂x = (∂y/∂x)ᵀ g. Every one of them reduces an axis, so its backward puts
that axis back (broadcasting g over it, or multiplying by a transposed operand).
"""
from __future__ import annotations

import numpy as np

from deepdive.scratch.tensor import Function


class MatMul(Function):
    """y = a @ b, yᵢⱼ = Σₖ aᵢₖ bₖⱼ (batched over leading axes);  ∂L/∂a = g @ bᵀ, ∂L/∂b = aᵀ @ g.

    1-D operands follow NumPy's rules: they are treated as a row (a) or a
    column (b) vector and the added axis is removed again.
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        if a.ndim == 1 and b.ndim == 1:  # dot product
            return g * b, g * a
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = np.expand_dims(g, -2) if a.ndim == 1 else g  # put back the axes 1-D operands lost
        g2 = np.expand_dims(g2, -1) if b.ndim == 1 else g2
        ga = g2 @ np.swapaxes(b2, -1, -2)
        gb = np.swapaxes(a2, -1, -2) @ g2
        if a.ndim == 1:
            ga = ga[..., 0, :]
        if b.ndim == 1:
            gb = gb[..., 0]
        return ga, gb


def normalize_axes(axis, ndim) -> tuple:
    """``axis`` (None: all, an int, or several) as a tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    return tuple(a % ndim for a in axes)


class Sum(Function):
    """y = Σ x over ``axis``;  ∂L/∂x = g broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, normalize_axes(axis, x.ndim), keepdims
        return np.asarray(x.sum(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, g):
        if not ctx.keepdims:
            g = np.expand_dims(g, ctx.axes)
        return np.broadcast_to(g, ctx.shape).copy()


class Max(Function):
    """y = max x over ``axis``;  ∂L/∂x = g where x attains the max (shared evenly among ties), else 0."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        axes = normalize_axes(axis, x.ndim)
        y = x.max(axis=axes, keepdims=True)
        mask = (x == y)
        ctx.save_for_backward(mask / mask.sum(axis=axes, keepdims=True))
        ctx.axes, ctx.keepdims = axes, keepdims
        return y if keepdims else np.squeeze(y, axis=axes)

    @staticmethod
    def backward(ctx, g):
        (share,) = ctx.saved
        if not ctx.keepdims:
            g = np.expand_dims(g, ctx.axes)
        return share * g


class LogSoftmax(Function):
    """y = x − log Σⱼ e^xⱼ (shifted by max x for stability);  ∂L/∂x = g − softmax(x) · Σ g."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        y = ctx.saved[0]
        return g - np.exp(y) * g.sum(axis=ctx.axis, keepdims=True)
