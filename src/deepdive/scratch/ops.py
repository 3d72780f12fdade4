"""Differentiable operations: one small Function per op, the chain rule in each backward.

Notation: y = f(x), g = ∂L/∂y arriving from above; each backward returns
∂L/∂x = (∂y/∂x)ᵀ g. Gradients of broadcast inputs are reduced to the input's
shape by the engine (``tensor.sum_to_shape``), never here.
"""
from __future__ import annotations

import numpy as np

from deepdive.scratch.tensor import Function, Tensor


def _as_array(x, like: np.ndarray):
    """A Python number joins an op in the tensor's own dtype (float32 stays float32)."""
    if isinstance(x, Tensor):
        return x
    return np.asarray(x, dtype=like.dtype if like.dtype.kind == "f" else None)


# -- arithmetic ----------------------------------------------------------------
class Add(Function):
    """y = a + b;  ∂L/∂a = g, ∂L/∂b = g."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    """y = a − b;  ∂L/∂a = g, ∂L/∂b = −g."""

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, g):
        return g, -g


class Mul(Function):
    """y = a · b;  ∂L/∂a = g · b, ∂L/∂b = g · a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return g * b, g * a


class Div(Function):
    """y = a / b;  ∂L/∂a = g / b, ∂L/∂b = −g · a / b²."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return g / b, -g * a / (b * b)


class Neg(Function):
    """y = −x;  ∂L/∂x = −g."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


class Pow(Function):
    """y = x^p (p a constant);  ∂L/∂x = g · p · x^(p−1)."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.save_for_backward(x, p)
        return x ** p

    @staticmethod
    def backward(ctx, g):
        x, p = ctx.saved
        return g * p * x ** (p - 1), None


class MatMul(Function):
    """y = a @ b (batched over leading axes);  ∂L/∂a = g @ bᵀ, ∂L/∂b = aᵀ @ g.

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


# -- reductions ----------------------------------------------------------------
def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    return tuple(a % ndim for a in axes)


class Sum(Function):
    """y = Σ x over ``axis``;  ∂L/∂x = g broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, _norm_axes(axis, x.ndim), keepdims
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
        axes = _norm_axes(axis, x.ndim)
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


# -- shapes --------------------------------------------------------------------
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
    """y = x[index] (slices, integers, integer arrays);  ∂L/∂x scatters g back, adding repeats."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        return np.asarray(x[index])

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=ctx.dtype)
        np.add.at(grad, ctx.index, g)
        return grad


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


class CrossEntropy(Function):
    """L = −log softmax(z)[target], fused: ∂L/∂z = (softmax(z) − onehot(target)) / N for the mean.

    The fused form never forms softmax probabilities' logarithm separately, so
    it stays finite for any logits.
    """

    @staticmethod
    def forward(ctx, logits, targets, reduction="mean"):
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        n = logits.shape[0]
        losses = -log_probs[np.arange(n), targets]
        ctx.save_for_backward(log_probs, targets)
        ctx.reduction = reduction
        if reduction == "mean":
            return np.asarray(losses.mean())
        if reduction == "sum":
            return np.asarray(losses.sum())
        return losses

    @staticmethod
    def backward(ctx, g):
        log_probs, targets = ctx.saved
        n = log_probs.shape[0]
        grad = np.exp(log_probs)
        grad[np.arange(n), targets] -= 1
        if ctx.reduction == "mean":
            grad *= g / n
        elif ctx.reduction == "sum":
            grad *= g
        else:
            grad *= g[:, None]
        return grad, None


class MaskMultiply(Function):
    """y = x · m for a constant mask m (dropout);  ∂L/∂x = g · m."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return g * ctx.saved[0], None


# -- Tensor methods and operators -------------------------------------------------
def _binary(fn, swap=False):
    def method(self, other):
        other = _as_array(other, self.data)
        return fn.apply(other, self) if swap else fn.apply(self, other)
    return method


def _axis(dim, axis):
    return axis if dim is None else dim


def _sum(self, dim=None, keepdim=False, axis=None, keepdims=None):
    return Sum.apply(self, axis=_axis(dim, axis), keepdims=keepdim if keepdims is None else keepdims)


def _mean(self, dim=None, keepdim=False, axis=None, keepdims=None):
    axes = _norm_axes(_axis(dim, axis), self.ndim)
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


Tensor.__add__ = _binary(Add)
Tensor.__radd__ = _binary(Add, swap=True)
Tensor.__sub__ = _binary(Sub)
Tensor.__rsub__ = _binary(Sub, swap=True)
Tensor.__mul__ = _binary(Mul)
Tensor.__rmul__ = _binary(Mul, swap=True)
Tensor.__truediv__ = _binary(Div)
Tensor.__rtruediv__ = _binary(Div, swap=True)
Tensor.__matmul__ = _binary(MatMul)
Tensor.__rmatmul__ = _binary(MatMul, swap=True)
Tensor.__neg__ = lambda self: Neg.apply(self)
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
