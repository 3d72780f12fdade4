"""Few primitives, many compositions: −x, a − b, a / b, mean, dropout and cross-entropy are built from
Add, Mul, Pow, Sum, Index and LogSoftmax. Their gradients are checked against finite differences
(``scratch.gradcheck``) and against PyTorch in float64; their dtypes against PyTorch's."""
import ast
import importlib
import inspect
import pathlib
import pkgutil

import numpy as np
import pytest
import torch
import torch.nn.functional as tF

import deepdive.scratch
from deepdive.scratch import Tensor, ops
from deepdive.scratch.gradcheck import gradcheck
from deepdive.scratch.nn import functional as F
from deepdive.scratch.tensor import Context, Function

REMOVED = ("Sub", "Neg", "Div", "MaskMultiply", "CrossEntropy")
PRIMITIVES = {"Add", "Mul", "Pow", "Exp", "Log", "ReLU", "Sigmoid", "Tanh", "MatMul", "Sum", "Max", "LogSoftmax",
              "Reshape", "Permute", "Index", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"}
SCRATCH = pathlib.Path(deepdive.scratch.__file__).parent


def scratch_modules():
    return [importlib.import_module(m.name) for m in pkgutil.walk_packages([str(SCRATCH)], "deepdive.scratch.")]


def functions_defined_in_scratch():
    found, todo = set(), list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("deepdive.scratch."):
            found.add(cls)
    return found


def recorded_ops(root):
    """Names of the Function classes in the graph that leads to ``root``."""
    names, stack, seen = [], [root], set()
    while stack:
        t = stack.pop()
        if id(t) in seen or not isinstance(t, Tensor) or t._node is None:
            continue
        seen.add(id(t))
        fn, _, inputs = t._node
        names.append(fn.__name__)
        stack.extend(inputs)
    return names


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def away_from_zero(*shape, seed=1):
    x = rand(*shape, seed=seed)
    return np.sign(x) * (np.abs(x) + 0.5)  # both signs, |x| >= 0.5


# -- what is left: the primitives ------------------------------------------------------
def test_the_removed_ops_are_no_functions_any_more():
    scratch_modules()  # import every module, so every Function subclass is defined
    names = {cls.__name__ for cls in functions_defined_in_scratch()}
    assert names == PRIMITIVES
    for module in scratch_modules():
        for name in REMOVED:
            assert not hasattr(module, name), f"{module.__name__}.{name}"


def test_ops_keeps_its_public_names():
    for name in PRIMITIVES - {"Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"}:
        assert issubclass(getattr(ops, name), Function), name
    assert all(callable(getattr(ops, name)) for name in ("neg", "sub", "div"))


def test_compositions_record_only_primitives():
    a, b = Tensor(rand(3, 4), requires_grad=True), Tensor(away_from_zero(4), requires_grad=True)
    targets = np.array([0, 3, 1])
    cases = {
        "neg": (-a, ["Mul"]),
        "sub": (a - b, ["Add", "Mul"]),
        "rsub": (2.0 - a, ["Add", "Mul"]),
        "sub_const": (a - 2.0, ["Add"]),  # −2 folded: a constant needs no gradient
        "div": (a / b, ["Mul", "Pow"]),
        "rdiv": (2.0 / b, ["Mul", "Pow"]),
        "div_const": (a / 2.0, ["Mul"]),
        "mean": (a.mean(), ["Mul", "Sum"]),
        "dropout": (F.dropout(a, 0.5, mask=rand(3, 4) > 0), ["Mul"]),
        "cross_entropy": (F.cross_entropy(a, targets), ["Index", "LogSoftmax", "Mul", "Sum"]),
        "nll_none": (F.nll_loss(a, targets, reduction="none"), ["Index", "Mul"]),
    }
    for name, (out, expected) in cases.items():
        assert sorted(recorded_ops(out)) == expected, name


def test_the_constants_are_the_identities():
    a, b = Tensor(rand(3, 4), requires_grad=True), Tensor(away_from_zero(4), requires_grad=True)
    fn, _, (x, minus_one) = (-a)._node
    assert x is a and minus_one.dtype == a.dtype and minus_one == -1  # −x = (−1)·x
    fn, _, (x, negated) = (a - b)._node
    assert x is a and negated._node[0].__name__ == "Mul" and negated._node[2][1] == -1  # a − b = a + (−1)·b
    fn, _, (x, inverse) = (a / b)._node
    assert x is a and inverse._node[0].__name__ == "Pow" and inverse._node[2] == (b, -1)  # a / b = a · b⁻¹
    mask = rand(3, 4) > 0
    fn, _, (x, scaled) = F.dropout(a, 0.25, mask=mask)._node
    assert x is a and not isinstance(scaled, Tensor)  # a constant: no gradient, no graph
    np.testing.assert_array_equal(scaled, mask / 0.75)


def test_mul_computes_no_gradient_for_a_constant_and_keeps_only_the_constant():
    ctx = Context()
    ctx.needs_input_grad = (True, False)
    a, b, g = rand(3), rand(3, seed=1), rand(3, seed=2)
    np.testing.assert_array_equal(ops.Mul.forward(ctx, a, b), a * b)
    assert ctx.saved[0] is b and ctx.saved[1] is None  # a, the variable, is not kept for the constant's sake
    ga, gb = ops.Mul.backward(ctx, g)
    assert gb is None
    np.testing.assert_array_equal(ga, g * b)


# -- gradients: finite differences ---------------------------------------------------------
GRADCHECK = {
    "a - b": (lambda a, b: a - b, [rand(3, 4), rand(4, seed=1)]),
    "b - a (broadcast a)": (lambda a, b: b - a, [rand(3, 1), rand(2, 3, 4, seed=1)]),
    "2.5 - a": (lambda a: 2.5 - a, [rand(3, 4)]),
    "a - 2.5": (lambda a: a - 2.5, [rand(3, 4)]),
    "-x": (lambda x: -x, [rand(2, 3, 4)]),
    "-(a * b) - a": (lambda a, b: -(a * b) - a, [rand(3, 4), rand(3, 4, seed=1)]),
    "a / b": (lambda a, b: a / b, [rand(3, 4), away_from_zero(3, 4)]),
    "a / b (broadcast b)": (lambda a, b: a / b, [rand(2, 3, 4), away_from_zero(3, 1)]),
    "a / b (broadcast a)": (lambda a, b: a / b, [rand(4), away_from_zero(3, 4)]),
    "a / a": (lambda a: a / a, [away_from_zero(5)]),
    "2.5 / b": (lambda b: 2.5 / b, [away_from_zero(3, 4)]),
    "a / 2.5": (lambda a: a / 2.5, [rand(3, 4)]),
    "mean": (lambda x: x.mean(axis=1), [rand(3, 4)]),
    "dropout": (lambda x: F.dropout(x, 0.3, mask=rand(3, 4, seed=5) > -0.5), [rand(3, 4)]),
}


@pytest.mark.parametrize("name", GRADCHECK)
def test_composition_gradients_equal_finite_differences(name):
    fn, inputs = GRADCHECK[name]
    report = gradcheck(fn, inputs)
    assert report.ok, f"{name}: {report}"


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_and_nll_gradients_equal_finite_differences(reduction, smoothing):
    targets = np.array([0, 3, 4, 1, 3])
    report = gradcheck(lambda z: F.cross_entropy(z, targets, reduction, label_smoothing=smoothing), [rand(5, 6) * 3])
    assert report.ok, str(report)
    report = gradcheck(lambda lp: F.nll_loss(lp, targets, reduction), [rand(5, 6)])
    assert report.ok, str(report)


# -- against PyTorch, float64 ---------------------------------------------------------------
def against_torch(s_fn, t_fn, *arrays, rtol=1e-12):
    """Forward and every input's gradient equal PyTorch's in float64 (same upstream gradient)."""
    s_in = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    s_out, t_out = s_fn(*s_in), t_fn(*t_in)
    assert s_out.dtype == np.float64 and s_out.shape == tuple(t_out.shape)
    np.testing.assert_allclose(s_out.data, t_out.detach().numpy(), rtol=rtol, atol=1e-14)
    upstream = rand(*t_out.shape, seed=9)
    s_out.backward(upstream)
    t_out.backward(torch.from_numpy(upstream))
    for i, (s, t) in enumerate(zip(s_in, t_in)):
        np.testing.assert_allclose(s.grad, t.grad.numpy(), rtol=rtol, atol=1e-14, err_msg=f"input {i}")


@pytest.mark.parametrize("name", ["sub", "rsub", "neg", "div", "rdiv", "div_negative", "chain"])
def test_compositions_agree_with_torch(name):
    a, b = rand(2, 3, 4), away_from_zero(3, 1)
    fn = {"sub": lambda a, b: a - b, "rsub": lambda a, b: b - a, "neg": lambda a, b: -a - b,
          "div": lambda a, b: a / b, "rdiv": lambda a, b: b / a, "div_negative": lambda a, b: a / -b,
          "chain": lambda a, b: (1 - a / b) / (2 - b) - -a}[name]
    if name == "rdiv":
        a = away_from_zero(2, 3, 4)
    against_torch(fn, fn, a, b)


def test_dropout_agrees_with_torch():
    mask = rand(6, 7, seed=3) > 0.3
    against_torch(lambda x: F.dropout(x, 0.4, mask=mask), lambda x: x * torch.from_numpy(mask) / 0.6, rand(6, 7))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_agrees_with_torch(reduction, smoothing):
    targets = np.array([0, 3, 4, 1, 3, 3])
    t_targets = torch.from_numpy(targets)
    against_torch(lambda z: F.cross_entropy(z, Tensor(targets), reduction, label_smoothing=smoothing),
                  lambda z: tF.cross_entropy(z, t_targets, reduction=reduction, label_smoothing=smoothing),
                  rand(6, 5) * 4)
    against_torch(lambda lp: F.nll_loss(lp, targets, reduction),
                  lambda lp: tF.nll_loss(lp, t_targets, reduction=reduction), rand(6, 5))


def test_cross_entropy_stays_finite_and_refuses_unknown_reductions():
    logits = np.array([[1000.0, -1000.0, 0.0], [-5000.0, 5000.0, 3.0]])
    against_torch(lambda z: F.cross_entropy(z, np.array([1, 0])),
                  lambda z: tF.cross_entropy(z, torch.tensor([1, 0])), logits)
    for fn in (F.cross_entropy, F.nll_loss):
        with pytest.raises(ValueError, match="reduction"):
            fn(Tensor(logits), np.array([1, 0]), reduction="avg")
    with pytest.raises(IndexError):  # a target past the last class
        F.cross_entropy(Tensor(logits), np.array([3, 0]))


def test_division_by_zero_as_torch():
    a, b = np.array([1.0, -1.0, 0.0, 2.0]), np.array([0.0, 0.0, 0.0, -0.0])
    with np.errstate(all="ignore"):
        ours = (Tensor(a) / Tensor(b)).data
    np.testing.assert_array_equal(ours, (torch.from_numpy(a) / torch.from_numpy(b)).numpy())  # inf, −inf, nan, −inf


# -- values and dtypes ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sub_and_neg_are_exact_div_within_one_ulp(dtype):
    a, b = rand(1000).astype(dtype), away_from_zero(1000).astype(dtype)
    np.testing.assert_array_equal((Tensor(a) - Tensor(b)).data, a - b)
    np.testing.assert_array_equal((1.5 - Tensor(b)).data, dtype(1.5) - b)
    np.testing.assert_array_equal((-Tensor(a)).data, -a)
    np.testing.assert_array_max_ulp((Tensor(a) / Tensor(b)).data, a / b, maxulp=1)  # a · b⁻¹: two roundings
    np.testing.assert_array_max_ulp((Tensor(a) / 7).data, a / dtype(7), maxulp=1)
    x = Tensor(a, requires_grad=True)
    (Tensor(b) - x).backward(np.ones_like(a))
    np.testing.assert_array_equal(x.grad, -np.ones_like(a))  # ∂(b − x)/∂x = −1 exactly


OPERATORS = {"neg": lambda x, y: -x, "sub": lambda x, y: x - y, "rsub": lambda x, y: 1 - x,
             "sub1": lambda x, y: x - 1, "div": lambda x, y: x / y, "div2": lambda x, y: x / 2,
             "rdiv": lambda x, y: 2 / x, "div2.5": lambda x, y: x / 2.5, "mean": lambda x, y: x.mean()}


@pytest.mark.parametrize("name", OPERATORS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_dtypes_follow_torch(name, dtype):
    if name == "mean" and dtype == np.int64:
        pytest.skip("torch refuses the mean of integers")
    x, y = np.array([3, -4, 5], dtype=dtype), np.array([2, 1, -5], dtype=dtype)
    ours = OPERATORS[name](Tensor(x), Tensor(y))
    theirs = OPERATORS[name](torch.from_numpy(x), torch.from_numpy(y))
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), name
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)


def test_float32_stays_float32_through_gradients():
    x = Tensor(rand(4, 5).astype(np.float32), requires_grad=True)
    y = Tensor(away_from_zero(5).astype(np.float32), requires_grad=True)
    targets = np.array([0, 1, 4, 2])
    for out in (-x, x - 1, 1 - x, x - y, x / 3, 3 / y, x / y, x.mean(), F.dropout(x, 0.5),
                F.cross_entropy(x, targets), F.cross_entropy(x, targets, label_smoothing=0.1),
                F.nll_loss(x, targets, "sum")):
        assert out.dtype == np.float32
        x.grad = y.grad = None
        out.sum().backward()
        assert all(t.grad is None or t.grad.dtype == np.float32 for t in (x, y))


# -- size: small modules, small functions ----------------------------------------------------
def test_scratch_modules_and_functions_are_small():
    for path in sorted(SCRATCH.rglob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= 400, f"{path.name}: {len(text.splitlines())} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{path.name}: {node.name} has {length} lines"


def test_every_primitive_writes_its_maths_and_every_composition_its_identity():
    for cls in functions_defined_in_scratch():
        doc = inspect.getdoc(cls) or ""
        assert "∂L/∂" in doc, cls.__name__  # the local gradient, in the docstring
    for fn in (ops.neg, ops.sub, ops.div, F.nll_loss, F.cross_entropy, F.dropout):
        assert "=" in inspect.getdoc(fn).splitlines()[0], fn.__name__
