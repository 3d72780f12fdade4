"""Differentiable operations: few primitives, many compositions (micrograd's way).

The primitives are small ``Function`` classes, each with its chain rule
written out in ``backward`` (y = f(x), g = ∂L/∂y arriving from above,
∂L/∂x = (∂y/∂x)ᵀ g):

    elementwise.py   Add, Mul, Pow, Exp, Log, ReLU, Sigmoid, Tanh
    reductions.py    MatMul, Sum, Max, LogSoftmax
    shapes.py        Reshape, Permute, Index
    conv.py          Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d

Everything else is composed of them and differentiated by the engine through
its parts, with no backward of its own to get wrong:

    −x = (−1)·x        a − b = a + (−1)·b        a / b = a · b⁻¹        mean x = (Σ x) / n
    dropout(x) = x · mask/(1 − p)                 cross_entropy = NLL ∘ log_softmax
    (the last two in ``nn/functional.py``)

This module re-exports the primitives (``ops.Add``, ``ops.LogSoftmax``, ...),
defines the compositions and attaches the Tensor operators and methods.
"""
from __future__ import annotations

import numpy as np

from deepdive.scratch.elementwise import Add, Exp, Log, Mul, Pow, ReLU, Sigmoid, Tanh
from deepdive.scratch.reductions import LogSoftmax, MatMul, Max, Sum, normalize_axes
from deepdive.scratch.shapes import Index, Permute, Reshape
from deepdive.scratch.tensor import Tensor

__all__ = ["Add", "Mul", "Pow", "Exp", "Log", "ReLU", "Sigmoid", "Tanh", "MatMul", "Sum", "Max", "LogSoftmax",
           "Reshape", "Permute", "Index", "neg", "sub", "div"]


def _as_array(x, like: np.ndarray):
    """A Python number joins an op in the tensor's own dtype (float32 stays float32)."""
    if isinstance(x, Tensor):
        return x
    return np.asarray(x, dtype=like.dtype if like.dtype.kind == "f" else None)


def _float(x):
    """True division gives floats, as in torch: integer (or bool) tensor data is taken as float32."""
    if isinstance(x, Tensor) and x.dtype.kind not in "fc":
        return Tensor(x.data.astype(np.float32))
    return x


# -- compositions -----------------------------------------------------------------
def neg(x: Tensor) -> Tensor:
    """−x = (−1)·x, the −1 in x's own dtype (float32 stays float32)."""
    return Mul.apply(x, np.negative(np.ones((), dtype=x.dtype)))


def sub(a, b) -> Tensor:
    """a − b = a + (−1)·b (a constant b, which needs no gradient, is negated at once)."""
    return Add.apply(a, neg(b) if isinstance(b, Tensor) else np.negative(b))


def div(a, b) -> Tensor:
    """a / b = a · b⁻¹ (b⁻¹ by Pow; a constant b is inverted at once)."""
    return Mul.apply(a, Pow.apply(b, -1) if isinstance(b, Tensor) else np.reciprocal(b))


# -- Tensor methods and operators -------------------------------------------------
def _binary(fn, swap=False, floats=False):
    """A Tensor operator: ``fn(self, other)`` (``fn(other, self)`` if ``swap``), other in self's dtype."""
    def method(self, other):
        if floats:
            self, other = _float(self), _float(other)
        other = _as_array(other, self.data)
        return fn(other, self) if swap else fn(self, other)
    return method


def _axis(dim, axis):
    return axis if dim is None else dim


def _sum(self, dim=None, keepdim=False, axis=None, keepdims=None):
    return Sum.apply(self, axis=_axis(dim, axis), keepdims=keepdim if keepdims is None else keepdims)


def _mean(self, dim=None, keepdim=False, axis=None, keepdims=None):
    """mean x = (Σ x) / n over the reduced axes."""
    axes = normalize_axes(_axis(dim, axis), self.ndim)
    count = int(np.prod([self.shape[a] for a in axes]))
    return _sum(self, axes, keepdim if keepdims is None else keepdims) / count


def _max(self, dim=None, keepdim=False, axis=None, keepdims=None):
    return Max.apply(self, axis=_axis(dim, axis), keepdims=keepdim if keepdims is None else keepdims)


def _reshape(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(self, shape=shape)


def _flatten(self, start_dim=0, end_dim=-1):
    end = end_dim % self.ndim
    shape = self.shape[:start_dim] + (-1,) + self.shape[end + 1:]
    return Reshape.apply(self, shape=shape)


def _permute(self, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return Permute.apply(self, dims=tuple(d % self.ndim for d in dims))


def _transpose(self, dim0=-2, dim1=-1):
    dims = list(range(self.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(self, dims=tuple(dims))


def _getitem(self, index):
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return Index.apply(self, index=index)


def _argmax(self, dim=None, axis=None):
    return Tensor(self.data.argmax(axis=_axis(dim, axis)))


Tensor.__add__ = _binary(Add.apply)
Tensor.__radd__ = _binary(Add.apply, swap=True)
Tensor.__sub__ = _binary(sub)
Tensor.__rsub__ = _binary(sub, swap=True)
Tensor.__mul__ = _binary(Mul.apply)
Tensor.__rmul__ = _binary(Mul.apply, swap=True)
Tensor.__truediv__ = _binary(div, floats=True)
Tensor.__rtruediv__ = _binary(div, swap=True, floats=True)
Tensor.__matmul__ = _binary(MatMul.apply)
Tensor.__rmatmul__ = _binary(MatMul.apply, swap=True)
Tensor.__neg__ = neg
Tensor.__pow__ = lambda self, p: Pow.apply(self, p)
Tensor.__getitem__ = _getitem
Tensor.sum = _sum
Tensor.mean = _mean
Tensor.max = _max
Tensor.reshape = _reshape
Tensor.view = _reshape
Tensor.flatten = _flatten
Tensor.permute = _permute
Tensor.transpose = _transpose
Tensor.T = property(lambda self: _permute(self, tuple(reversed(range(self.ndim)))))
Tensor.exp = lambda self: Exp.apply(self)
Tensor.log = lambda self: Log.apply(self)
Tensor.relu = lambda self: ReLU.apply(self)
Tensor.sigmoid = lambda self: Sigmoid.apply(self)
Tensor.tanh = lambda self: Tanh.apply(self)
Tensor.argmax = _argmax
