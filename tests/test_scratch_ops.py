"""Every scratch op's forward and gradient against live PyTorch, in float64, <= 1e-8 relative."""
import numpy as np
import pytest
import torch
import torch.nn.functional as tF

from deepdive.scratch import Tensor
from deepdive.scratch.nn import functional as F

RTOL = 1e-8


def close(a, b, what=""):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-12)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= RTOL * scale, f"{what}: max abs error {err:.3e} > {RTOL:g} x {scale:.3e}"


def check(scratch_fn, torch_fn, *arrays, grad=True):
    """Run both functions on the same float64 inputs and upstream gradient; compare output and input grads."""
    rng = np.random.default_rng(123)
    s_in = [Tensor(a.copy(), requires_grad=grad) for a in arrays]
    t_in = [torch.tensor(a.copy(), requires_grad=grad) for a in arrays]
    s_out, t_out = scratch_fn(*s_in), torch_fn(*t_in)
    close(s_out.data, t_out.detach().numpy(), "forward")
    assert s_out.data.dtype == np.float64
    if not grad:
        return
    upstream = rng.standard_normal(t_out.shape)
    s_out.backward(upstream)
    t_out.backward(torch.from_numpy(upstream))
    for i, (s, t) in enumerate(zip(s_in, t_in)):
        close(s.grad, t.grad.numpy(), f"grad of input {i}")


def rand(*shape, positive=False, seed=0):
    x = np.asarray(np.random.default_rng(seed + sum(shape) + len(shape)).standard_normal(shape))
    return np.abs(x) + 0.5 if positive else x


BROADCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3, 4), (3, 1)), ((1, 4), (3, 1)), ((5,), ()),
             ((2, 1, 4), (1, 3, 1)), ((), (2, 3))]


@pytest.mark.parametrize("a_shape, b_shape", BROADCAST)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_with_broadcasting(op, a_shape, b_shape):
    fn = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b}[op]
    check(fn, fn, rand(*a_shape), rand(*b_shape, positive=(op == "div"), seed=1))


@pytest.mark.parametrize("op", ["radd", "rsub", "rmul", "rdiv", "add", "sub", "mul", "div"])
def test_with_python_scalars(op):
    fn = {"radd": lambda x: 2.5 + x, "rsub": lambda x: 2.5 - x, "rmul": lambda x: 2.5 * x,
          "rdiv": lambda x: 2.5 / x, "add": lambda x: x + 2.5, "sub": lambda x: x - 2.5,
          "mul": lambda x: x * 2.5, "div": lambda x: x / 2.5}[op]
    check(fn, fn, rand(3, 4, positive=True))


@pytest.mark.parametrize("name", ["neg", "exp", "log", "relu", "sigmoid", "tanh", "pow2", "pow3", "sqrt"])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5)])
def test_unary(name, shape):
    s_fn = {"neg": lambda x: -x, "exp": lambda x: x.exp(), "log": lambda x: x.log(), "relu": F.relu,
            "sigmoid": F.sigmoid, "tanh": F.tanh, "pow2": lambda x: x ** 2, "pow3": lambda x: x ** 3,
            "sqrt": lambda x: x ** 0.5}[name]
    t_fn = {"neg": lambda x: -x, "exp": torch.exp, "log": torch.log, "relu": torch.relu, "sigmoid": torch.sigmoid,
            "tanh": torch.tanh, "pow2": lambda x: x ** 2, "pow3": lambda x: x ** 3, "sqrt": lambda x: x ** 0.5}[name]
    check(s_fn, t_fn, rand(*shape, positive=name in ("log", "sqrt")))


def test_relu_derivative_at_zero_is_zero():
    check(F.relu, torch.relu, np.array([-1.0, 0.0, 0.0, 2.0]))


def test_sigmoid_extremes_are_finite():
    check(F.sigmoid, torch.sigmoid, np.array([-800.0, -30.0, 0.0, 30.0, 800.0]))


@pytest.mark.parametrize("a_shape, b_shape", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
                                              ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                                              ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (4,))])
def test_matmul(a_shape, b_shape):
    check(lambda a, b: a @ b, lambda a, b: a @ b, rand(*a_shape), rand(*b_shape, seed=2))


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), 1])
@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_reductions(op, axis, keep):
    x = rand(2, 3, 4)
    if op == "max" and axis is None:
        s_fn, t_fn = (lambda t: t.max()), (lambda t: t.max())
        if keep:
            s_fn, t_fn = (lambda t: t.max(axis=(0, 1, 2), keepdims=True)), (lambda t: t.amax(dim=(0, 1, 2), keepdim=True))
    elif op == "max":
        s_fn, t_fn = (lambda t: t.max(axis, keep)), (lambda t: t.amax(dim=axis, keepdim=keep))
    elif axis is None:
        s_fn, t_fn = (lambda t: getattr(t, op)()), (lambda t: getattr(t, op)())
        if keep:
            s_fn = lambda t: getattr(t, op)(axis=(0, 1, 2), keepdims=True)
            t_fn = lambda t: getattr(t, op)(dim=(0, 1, 2), keepdim=True)
    else:
        s_fn, t_fn = (lambda t: getattr(t, op)(axis, keep)), (lambda t: getattr(t, op)(dim=axis, keepdim=keep))
    check(s_fn, t_fn, x)


@pytest.mark.parametrize("case", ["reshape", "view", "flatten", "flatten1", "transpose", "permute", "T"])
def test_shape_ops(case):
    s_fn, t_fn = {
        "reshape": (lambda x: x.reshape(4, 6), lambda x: x.reshape(4, 6)),
        "view": (lambda x: x.view(-1, 12), lambda x: x.reshape(-1, 12)),
        "flatten": (lambda x: x.flatten(), lambda x: x.flatten()),
        "flatten1": (lambda x: x.flatten(1), lambda x: x.flatten(1)),
        "transpose": (lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
        "permute": (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
        "T": (lambda x: x.transpose(-1, -2) * 2, lambda x: x.transpose(-1, -2) * 2),
    }[case]
    check(s_fn, t_fn, rand(2, 3, 4))


@pytest.mark.parametrize("index", ["ints", "repeats", "rows_cols", "slice", "int"])
def test_indexing(index):
    rows, cols = np.array([0, 2, 2, 1]), np.array([3, 0, 0, 1])
    idx = {"ints": np.array([2, 0]), "repeats": np.array([1, 1, 1, 0]), "rows_cols": (rows, cols),
           "slice": (slice(None), slice(1, 3)), "int": 1}[index]
    t_idx = tuple(torch.from_numpy(i) if isinstance(i, np.ndarray) else i for i in idx) if isinstance(idx, tuple) \
        else (torch.from_numpy(idx) if isinstance(idx, np.ndarray) else idx)
    check(lambda x: x[idx], lambda x: x[t_idx], rand(3, 4))


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_log_softmax(dim):
    check(lambda x: F.log_softmax(x, dim=dim), lambda x: tF.log_softmax(x, dim=dim), rand(4, 5) * 10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(reduction):
    targets = np.array([0, 3, 4, 1, 3])
    check(lambda z: F.cross_entropy(z, targets, reduction=reduction),
          lambda z: tF.cross_entropy(z, torch.from_numpy(targets), reduction=reduction), rand(5, 6) * 5)


def test_cross_entropy_is_stable_for_huge_logits():
    targets = np.array([0, 1])
    logits = np.array([[1000.0, -1000.0, 0.0], [-5000.0, 5000.0, 3.0]])
    check(lambda z: F.cross_entropy(z, targets), lambda z: tF.cross_entropy(z, torch.from_numpy(targets)), logits)


def test_dropout_train_and_eval():
    x = rand(6, 7)
    mask = np.random.default_rng(5).random((6, 7)) >= 0.3
    check(lambda t: F.dropout(t, 0.3, True, mask=mask),
          lambda t: t * torch.from_numpy(mask).double() / 0.7, x)
    check(lambda t: F.dropout(t, 0.3, False), lambda t: tF.dropout(t, 0.3, False), x)
    np.random.seed(0)
    drawn = F.dropout(Tensor(np.ones((200, 200))), 0.25, True).data
    assert set(np.unique(drawn)) == {0.0, 1 / 0.75}
    assert abs((drawn == 0).mean() - 0.25) < 0.01


CONV_CASES = [((2, 3, 8, 8), (4, 3, 3, 3), 1, 0, True), ((1, 2, 7, 9), (3, 2, 3, 2), 2, 1, True),
              ((3, 1, 6, 6), (2, 1, 1, 1), 1, 0, False), ((2, 4, 9, 7), (5, 4, 5, 3), 3, 2, True),
              ((1, 3, 5, 5), (2, 3, 5, 5), 1, 0, True)]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, bias", CONV_CASES)
def test_conv2d(x_shape, w_shape, stride, padding, bias):
    arrays = [rand(*x_shape), rand(*w_shape, seed=3)] + ([rand(w_shape[0], seed=4)] if bias else [])
    check(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, stride=stride, padding=padding),
          lambda x, w, *b: tF.conv2d(x, w, b[0] if b else None, stride=stride, padding=padding), *arrays)


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), 0), (3, 1, 1)])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling(kind, kernel, stride, padding):
    s_fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    t_fn = tF.max_pool2d if kind == "max" else tF.avg_pool2d
    check(lambda x: s_fn(x, kernel, stride, padding), lambda x: t_fn(x, kernel, stride, padding),
          rand(2, 3, 7, 8))


@pytest.mark.parametrize("size", [1, (2, 3), 3, (7, 5), (4, 2)])
def test_adaptive_avg_pool(size):
    check(lambda x: F.adaptive_avg_pool2d(x, size), lambda x: tF.adaptive_avg_pool2d(x, size), rand(2, 3, 7, 5))
