"""deepdive.scratch: the article's theory as a from-scratch engine, NumPy only.

    Tensor + autograd (tensor.py)  ->  ops (ops.py: primitives in elementwise.py, reductions.py,
    shapes.py, conv.py; the rest composed of them)  ->  nn  ->  optim

Small enough to read in an afternoon, and checked against PyTorch: the same
model code (the article's SimpleNet and Net) runs on ``torch.nn`` and on
``deepdive.scratch.nn`` and takes the same steps. Nothing here imports torch.
"""
from deepdive.scratch import ops as _ops  # noqa: F401  (attaches operators to Tensor)
from deepdive.scratch.tensor import Tensor, no_grad, is_grad_enabled

__all__ = ["Tensor", "no_grad", "is_grad_enabled"]
