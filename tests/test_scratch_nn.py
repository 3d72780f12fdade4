import numpy as np
import pytest
import torch
import torch.nn.functional as tF

import deepdive.scratch.nn as snn
from deepdive.models.registry import build_model
from deepdive.scratch import Tensor


@pytest.mark.parametrize("name, shape", [("simplenet", (1, 28, 28)), ("article-cnn", (3, 32, 32)),
                                         ("perceptron", (3, 8, 8))])
def test_same_parameter_names_and_shapes_as_torch(name, shape):
    t = build_model(name, torch.nn, tF, shape, 10)
    s = build_model(name, snn, snn.functional, shape, 10)
    assert [(n, tuple(p.shape)) for n, p in t.named_parameters()] == \
           [(n, p.shape) for n, p in s.named_parameters()]
    s.load_state_dict(t.state_dict())  # torch tensors as values
    t.eval(), s.eval()
    x = np.random.default_rng(0).standard_normal((2,) + shape).astype(np.float32)
    assert np.allclose(s(x).data, t(torch.from_numpy(x)).detach().numpy(), atol=1e-5)  # numpy input accepted


def test_state_dict_roundtrip_and_strictness():
    m = snn.Sequential(snn.Linear(3, 4), snn.ReLU(), snn.Linear(4, 2))
    state = m.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    other = snn.Sequential(snn.Linear(3, 4), snn.ReLU(), snn.Linear(4, 2))
    other.load_state_dict(state)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(m.parameters(), other.parameters()))
    with pytest.raises(KeyError):
        other.load_state_dict({"0.weight": state["0.weight"]})
    with pytest.raises(ValueError):
        other.load_state_dict({**state, "0.bias": np.zeros(7)})


def test_train_eval_and_dtypes():
    m = snn.Sequential(snn.Linear(3, 4), snn.Dropout(0.5))
    assert m.training and m[1].training
    m.eval()
    assert not m[1].training
    x = np.ones((2, 3), dtype=np.float32)
    assert np.array_equal(m(x).data, m(x).data)  # dropout off in eval mode
    assert m[0].weight.dtype == np.float32
    m.double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters())


def test_default_init_matches_torch_distributions():
    np.random.seed(0)
    torch.manual_seed(0)
    for s_layer, t_layer, fan_in in ((snn.Linear(400, 300), torch.nn.Linear(400, 300), 400),
                                     (snn.Conv2d(16, 32, 3), torch.nn.Conv2d(16, 32, 3), 16 * 9)):
        bound = 1 / np.sqrt(fan_in)
        for s_param, t_param in ((s_layer.weight, t_layer.weight), (s_layer.bias, t_layer.bias)):
            s_values, t_values = s_param.data.ravel(), t_param.detach().numpy().ravel()
            assert np.abs(s_values).max() <= bound and np.abs(s_values).max() > 0.95 * bound
            # U(-b, b): variance b²/3, the same as torch's draw; the sample variance of n uniform
            # draws has a relative standard error of sqrt(0.8 / n): allow 4 of them
            se = np.sqrt(0.8 / s_values.size)
            assert s_values.var() == pytest.approx(bound ** 2 / 3, rel=4 * se)
            assert s_values.var() == pytest.approx(t_values.var(), rel=6 * se)


def test_modules_flatten_pools_and_loss():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)))
    assert snn.Flatten()(x).shape == (2, 192)
    assert snn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert snn.AdaptiveAvgPool2d(1)(x).shape == (2, 3, 1, 1)
    logits = Tensor(np.random.default_rng(1).standard_normal((4, 5)), requires_grad=True)
    targets = np.array([0, 1, 4, 2])
    a = snn.CrossEntropyLoss()(logits, targets)
    b = snn.CrossEntropyLoss()(logits, Tensor(targets))
    expected = tF.cross_entropy(torch.from_numpy(logits.data), torch.from_numpy(targets))
    assert a.item() == pytest.approx(expected.item()) and b.item() == pytest.approx(expected.item())


def test_module_needs_super_init():
    class Bad(snn.Module):
        def __init__(self):
            self.fc = snn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Bad()
