"""Every scratch optimizer against torch.optim over many steps, float64."""
import numpy as np
import pytest
import torch

import deepdive.scratch.optim as soptim
from deepdive.scratch import Tensor

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=1e-2, initial_accumulator_value=0.1)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=1e-2)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=1e-2)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
]


def grads(step, shapes):
    rng = np.random.default_rng(step)
    return [rng.standard_normal(s) * (1 + step % 3) for s in shapes]


def run_torch(name, kwargs, init, steps):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(torch.optim, name)(params, **kwargs)
    for step in range(steps):
        for p, g in zip(params, grads(step, [a.shape for a in init])):
            p.grad = torch.from_numpy(g + 0.1 * p.detach().numpy())  # a gradient that depends on θ
        opt.step()
    return [p.detach().numpy() for p in params]


def run_scratch(name, kwargs, init, steps, start=0, opt=None, params=None):
    params = params or [Tensor(a.copy(), requires_grad=True) for a in init]
    opt = opt or getattr(soptim, name)(params, **kwargs)
    for step in range(start, steps):
        for p, g in zip(params, grads(step, [a.shape for a in init])):
            p.grad = g + 0.1 * p.data
        opt.step()
    return params, opt


@pytest.mark.parametrize("name, kwargs", CASES)
def test_matches_torch_over_25_steps(name, kwargs):
    init = [np.random.default_rng(9).standard_normal((4, 3)), np.random.default_rng(8).standard_normal(5)]
    expected = run_torch(name, kwargs, init, 25)
    params, _ = run_scratch(name, kwargs, init, 25)
    for p, e in zip(params, expected):
        assert np.allclose(p.data, e, rtol=1e-10, atol=1e-12), name


@pytest.mark.parametrize("name, kwargs", CASES[1::2])
def test_state_dict_resume_is_exact(name, kwargs):
    init = [np.random.default_rng(1).standard_normal((3, 3))]
    straight, _ = run_scratch(name, kwargs, init, 20)
    params, opt = run_scratch(name, kwargs, init, 10)
    state = opt.state_dict()
    fresh = [Tensor(p.data.copy(), requires_grad=True) for p in params]
    new_opt = getattr(soptim, name)(fresh, **kwargs)
    new_opt.load_state_dict(state)
    resumed, _ = run_scratch(name, kwargs, init, 20, start=10, opt=new_opt, params=fresh)
    assert np.array_equal(resumed[0].data, straight[0].data)


def test_defaults_match_torch():
    p = [Tensor(np.zeros(2), requires_grad=True)]
    tp = [torch.zeros(2, requires_grad=True)]
    for name in ("Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW"):
        ours, theirs = getattr(soptim, name)(p).hyper, getattr(torch.optim, name)(tp).defaults
        for key, value in ours.items():
            assert theirs[key] == pytest.approx(value), (name, key)


def test_zero_grad_and_missing_grads():
    p = Tensor(np.ones(2), requires_grad=True)
    opt = soptim.SGD([p], lr=0.1)
    opt.step()  # no gradient yet: nothing moves
    assert np.array_equal(p.data, np.ones(2))
    p.grad = np.ones(2)
    opt.zero_grad()
    assert p.grad is None


@pytest.mark.parametrize("factor", [0.75, 1.5, 3.0])
def test_scratch_gradient_clipping_is_torchs_to_the_last_digit(factor):
    """The scratch engine clips as ``torch.nn.utils.clip_grad_norm_``: every gradient scaled by
    max_norm / (‖g‖₂ + 1e-6) when that is below 1, untouched otherwise (a norm between max_norm / 2 and
    max_norm included), compared in float64 to 1e-12."""
    import torch

    from deepdive.training.engines import ScratchEngine

    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in ((3, 4), (4,), (2, 2))]
    norm = float(np.sqrt(sum((a ** 2).sum() for a in arrays)))
    max_norm = norm / factor

    class Param:
        def __init__(self, grad):
            self.grad = grad

    class Model:
        params = [Param(a.copy()) for a in arrays]

        def parameters(self):
            return self.params

    model = Model()
    total = ScratchEngine.clip_grad_norm(object.__new__(ScratchEngine), model, max_norm)
    reference = [torch.tensor(a, requires_grad=True) for a in arrays]
    for t, a in zip(reference, arrays):
        t.grad = torch.tensor(a)
    expected_total = float(torch.nn.utils.clip_grad_norm_(reference, max_norm))
    assert total == pytest.approx(expected_total, rel=1e-12)
    for p, t in zip(model.params, reference):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12, atol=0)
    if factor < 1:
        assert all(np.array_equal(p.grad, a) for p, a in zip(model.params, arrays))  # below the norm: untouched
