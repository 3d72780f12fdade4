"""Elementwise primitives: arithmetic (+, ·, xᵖ) and the functions applied one element at a time.

Notation: y = f(x), g = ∂L/∂y arriving from above; each backward returns
∂L/∂x = (∂y/∂x)ᵀ g, which for an elementwise op is g times the local slope.
Gradients of broadcast inputs are reduced to the input's shape by the engine
(``tensor.sum_to_shape``), never here. Subtraction, negation and division are
not primitives: ``ops.py`` composes them from Add, Mul and Pow.
"""
from __future__ import annotations

import numpy as np

from deepdive.scratch.tensor import Function


# -- arithmetic ----------------------------------------------------------------
class Add(Function):
    """y = a + b;  ∂L/∂a = g, ∂L/∂b = g."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


class Mul(Function):
    """y = a · b;  ∂L/∂a = g · b, ∂L/∂b = g · a.

    A factor that needs no gradient (a constant such as −1, 1/n or a dropout
    mask) gets none computed, and the other factor is not kept for it: a
    product with a constant keeps just the constant and costs one product back.
    """

    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad
        ctx.save_for_backward(b if need_a else None, a if need_b else None)
        return a * b

    @staticmethod
    def backward(ctx, g):
        b, a = ctx.saved  # b for ∂L/∂a, a for ∂L/∂b; None where that gradient is not needed
        return (None if b is None else g * b), (None if a is None else g * a)


class Pow(Function):
    """y = xᵖ (p a constant);  ∂L/∂x = g · p · x^(p−1)."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.save_for_backward(x, p)
        return x ** p

    @staticmethod
    def backward(ctx, g):
        x, p = ctx.saved
        return g * p * x ** (p - 1), None


# -- elementwise functions -------------------------------------------------------
class Exp(Function):
    """y = eˣ;  ∂L/∂x = g · y."""

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return g * ctx.saved[0]


class Log(Function):
    """y = ln x;  ∂L/∂x = g / x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, g):
        return g / ctx.saved[0]


class ReLU(Function):
    """y = max(0, x);  ∂L/∂x = g · [x > 0]  (ReLU'(0) = 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        mask = x > 0
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return g * ctx.saved[0]


class Sigmoid(Function):
    """y = 1 / (1 + e⁻ˣ);  ∂L/∂x = g · y (1 − y)."""

    @staticmethod
    def forward(ctx, x):
        y = np.empty_like(x)
        pos = x >= 0  # two forms, each free of overflow on its side
        y[pos] = 1 / (1 + np.exp(-x[pos]))
        e = np.exp(x[~pos])
        y[~pos] = e / (1 + e)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y = ctx.saved[0]
        return g * y * (1 - y)


class Tanh(Function):
    """y = tanh x;  ∂L/∂x = g (1 − y²)."""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y = ctx.saved[0]
        return g * (1 - y * y)
