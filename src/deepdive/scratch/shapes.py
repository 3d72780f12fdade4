"""Shape primitives: the same numbers rearranged or picked, so each backward puts g back in place.

Notation: y = f(x), g = ∂L/∂y arriving from above; ∂L/∂x has x's shape.
"""
from __future__ import annotations

import numpy as np

from deepdive.scratch.tensor import Function


class Reshape(Function):
    """y = x viewed with a new shape;  ∂L/∂x = g reshaped back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


class Permute(Function):
    """y = x with axes reordered;  ∂L/∂x = g with the inverse permutation."""

    @staticmethod
    def forward(ctx, x, dims):
        ctx.inverse = np.argsort(dims)
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse)


class Index(Function):
    """y = x[index] (slices, integers, integer arrays: a gather);  ∂L/∂x scatters g back, adding repeats.

    NLL is this gather: log p[arange(N), targets] picks each example's target log-probability.
    """

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        return np.asarray(x[index])

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=ctx.dtype)
        np.add.at(grad, ctx.index, g)
        return grad
