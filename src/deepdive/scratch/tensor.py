"""Tensor and reverse-mode autograd on a dynamic computational graph.

Every operation on Tensors that need gradients records a node: the operation
(a ``Function`` subclass with ``forward(ctx, ...)`` and ``backward(ctx, grad)``),
its context (whatever forward saved) and its input Tensors. ``backward()``
walks the nodes in reverse topological order and applies the chain rule

    ∂L/∂x = Σ over the uses y of x:  (∂y/∂x)ᵀ ∂L/∂y

each ``Function.backward`` supplying one (∂y/∂x)ᵀ ∂L/∂y product. Leaf
Tensors with ``requires_grad`` accumulate into ``.grad`` until it is reset,
as in PyTorch. NumPy only.
"""
from __future__ import annotations

import contextlib

import numpy as np

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Within this block operations record no graph (evaluation, optimizer updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


def sum_to_shape(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Undo broadcasting: sum ``grad`` over the axes that broadcasting added or stretched.

    If y = f(x) broadcast x from ``shape`` to grad.shape, each element of x fed
    several elements of y, so ∂L/∂x is the sum of their gradients. This is the
    one place where the engine reduces broadcast gradients.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


class Context:
    """What a Function's forward saves for its backward."""

    __slots__ = ("saved", "__dict__")

    def save_for_backward(self, *values) -> None:
        self.saved = values


class Function:
    """One differentiable operation: subclasses define ``forward`` and ``backward``.

    ``forward(ctx, *arrays, **options)`` computes the output array;
    ``backward(ctx, grad)`` returns one gradient per positional input (None
    where an input needs none), shaped like the output's broadcast inputs.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs) -> "Tensor":
        ctx = Context()
        ctx.needs_input_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        out = Tensor(cls.forward(ctx, *arrays, **kwargs))
        if _grad_enabled and any(isinstance(x, Tensor) and x.requires_grad for x in inputs):
            out.requires_grad = True
            out._node = (cls, ctx, inputs)
        return out


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``Tensor(array, requires_grad=False)`` keeps the array's dtype (float64 in,
    float64 throughout); Python numbers and lists become float32 like torch's
    default, integer data stays integer.
    """

    __array_priority__ = 1000  # numpy defers to Tensor's operators

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, np.generic):  # a NumPy scalar (0-d arithmetic returns these): keep its dtype
            data = np.asarray(data)
        elif not isinstance(data, np.ndarray):
            array = np.asarray(data)
            data = array.astype(np.float32) if array.dtype == np.float64 else array
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        self.data: np.ndarray = data
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._node = None

    # -- basic properties -------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    # -- autograd ---------------------------------------------------------
    def backward(self, gradient=None) -> None:
        """Backpropagate from this tensor: seed ∂L/∂L = 1 for a scalar, else ``gradient``."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError("backward() without a gradient needs a scalar tensor")
            gradient = np.ones_like(self.data)
        gradient = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.data.dtype)
        grads = {id(self): gradient}
        for node in _topological_order(self):
            grad = grads.pop(id(node), None)
            if grad is None:  # every path to it was cut (e.g. integer data)
                continue
            if node._node is None:  # a leaf: accumulate, as torch does, until zero_grad()
                node.grad = grad.copy() if node.grad is None else node.grad + grad
                continue
            fn, ctx, inputs = node._node
            input_grads = fn.backward(ctx, grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for x, g in zip(inputs, input_grads):
                if g is None or not isinstance(x, Tensor) or not x.requires_grad:
                    continue
                g = sum_to_shape(g, x.data.shape)
                key = id(x)
                grads[key] = grads[key] + g if key in grads else g
            node._node = None  # free the graph as we go (retain_graph=False)

    # -- operators (defined in ops.py, attached there) -------------------


def _topological_order(root: Tensor) -> list[Tensor]:
    """Nodes that lead to ``root`` and need grad, ``root`` first, each after all its consumers.

    Iterative depth-first search (no recursion limit on deep graphs).
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._node is not None:
            for x in node._node[2]:
                if isinstance(x, Tensor) and x.requires_grad and id(x) not in visited:
                    stack.append((x, False))
    order.reverse()
    return order
