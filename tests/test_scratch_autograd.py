import numpy as np
import pytest

from deepdive.scratch import Tensor, no_grad
from deepdive.scratch.gradcheck import gradcheck
from deepdive.scratch.nn import functional as F
from deepdive.scratch.tensor import Function, sum_to_shape


def test_dtype_is_kept():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    y = (x * 3 + 1).exp().sum()
    assert y.data.dtype == np.float64
    y.backward()
    assert x.grad.dtype == np.float64
    z = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    assert ((z * 2.5) / 3).data.dtype == np.float32
    assert Tensor([1.0, 2.0]).dtype == np.float32  # Python numbers default to float32, like torch


def test_gradients_accumulate_until_reset():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    assert np.allclose(x.grad, 2 * 2 * x.data)
    x.grad = None
    (x * 3).sum().backward()
    assert np.allclose(x.grad, 3)


def test_shared_subexpressions_sum_their_paths():
    x = Tensor(np.array(3.0), requires_grad=True)
    y = x * x          # used twice below: dL/dx must add both paths
    loss = y * x + y   # x³ + x²  -> 3x² + 2x = 33
    loss.backward()
    assert x.grad == pytest.approx(33.0)


def test_deep_graph_has_no_recursion_limit():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(20000):
        y = y + 1e-4
    y.backward()
    assert x.grad == pytest.approx(1.0)


def test_backward_needs_gradient_for_non_scalars():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y = x * 2
    y.backward(np.full((2, 3), 0.5))
    assert np.allclose(x.grad, 1.0)


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = (x * 2).sum()
    assert not y.requires_grad
    with pytest.raises(RuntimeError):
        y.backward()


def test_sum_to_shape_reduces_broadcast_axes():
    g = np.ones((4, 2, 3))
    assert sum_to_shape(g, (2, 3)).tolist() == np.full((2, 3), 4.0).tolist()
    assert sum_to_shape(g, (2, 1)).tolist() == np.full((2, 1), 12.0).tolist()
    assert sum_to_shape(g, ()).item() == 24.0


def test_gradcheck_on_composite_functions():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    report = gradcheck(lambda x, w, b: F.log_softmax((x @ w + b).tanh() * F.sigmoid(x @ w), dim=1), [x, w, b])
    assert report.ok, str(report)
    targets = np.array([0, 2, 1])
    report = gradcheck(lambda x, w: F.cross_entropy(F.relu(x @ w) ** 2 / 3 - (x @ w).exp().mean(), targets), [x, w])
    assert report.ok, str(report)
    img, k = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    report = gradcheck(lambda i, k: F.adaptive_avg_pool2d(F.max_pool2d(F.relu(F.conv2d(i, k, padding=1)), 2), 1),
                       [img, k])
    assert report.ok, str(report)


class WrongSquare(Function):
    """y = x², with a deliberately wrong backward (g·x instead of 2·g·x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        return g * ctx.saved[0]


def test_gradcheck_finds_a_wrong_backward_and_names_the_element():
    x = np.array([[0.1, 0.2], [0.3, 3.0]])
    report = gradcheck(lambda t: WrongSquare.apply(t), [x])
    assert not report.ok
    assert report.worst_index == (1, 1)
    assert "MISMATCH" in str(report) and "index (1, 1)" in str(report)
