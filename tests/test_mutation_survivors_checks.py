"""The checks a restored checkpoint goes through, called directly with crafted states: its position in the epoch
(``check_position``), the kinds of its optimizer settings (``check_same_hyperparameter_types``), the engines'
loading of optimizer state, the scratch engine's gradient clipping, and the loop's target check. Each outcome is
compared with a value computed here or with the message the user reads, word for word (mutation testing found
these paths reached only by child processes or not at all)."""
import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from deepdive.training.train_state import Stopwatch, TrainState, check_position, check_same_hyperparameter_types
from deepdive.training import train_state


# -- check_position: the step within the epoch and the saved data order -----------------------------------------------
def test_a_state_at_the_epoch_last_step_fits_and_one_past_it_does_not():
    check_position(TrainState(step_in_epoch=5), 5, 40)  # stopped after the epoch's last step, before its end
    check_position(TrainState(step_in_epoch=0), 5, 40)
    with pytest.raises(ValueError) as raised:
        check_position(TrainState(step_in_epoch=6), 5, 40)
    assert str(raised.value) == "step 6 of an epoch of 5 steps"


def test_a_saved_order_must_be_an_int64_permutation_of_the_training_set():
    permutation = torch.randperm(8, generator=torch.Generator().manual_seed(2))
    check_position(TrainState(step_in_epoch=1, order=permutation), 2, 8)  # each check passes on its own
    check_position(TrainState(step_in_epoch=1, order=None), 2, 8)
    refused = {
        "int32": permutation.to(torch.int32),  # the right numbers in another dtype
        "float": permutation.double(),
        "2-D": permutation.view(1, 8),  # the right numbers in another shape
        "short": permutation[:7],
        "repeated": torch.tensor([0, 1, 2, 3, 4, 5, 6, 6]),  # int64, (8,), not a permutation
        "shifted": torch.arange(1, 9),
    }
    for name, order in refused.items():
        with pytest.raises(ValueError) as raised:
            check_position(TrainState(step_in_epoch=1, order=order), 2, 8)
        assert str(raised.value) == "the saved data order is not a permutation of the 8 training images", name


# -- the kinds of a restored optimizer's settings --------------------------------------------------------------------
KINDS = [  # (this optimizer's value, the saved one, same kind?)
    (0.1, 0.2, True), (0.1, 3, True), (5, 0.5, True),  # numbers: an int and a float are both numbers
    (0.1, True, False), (1, False, False),  # a flag is no number
    (0.1, math.nan, False), (0.1, math.inf, False), (0.1, -math.inf, False),  # nor is a non-finite float
    (0.1, "0.1", False), (0.1, None, False),
    (True, False, True), (False, True, True), (True, 1, False), (True, None, False),  # flags: bools only
    (None, None, True), (None, 0.0, False), (None, False, False),
    ((0.9, 0.999), [0.8, 0.99], True), ((0.9, 0.999), (0.8, 0.99), True), ([0.9, 0.999], (1, 0), True),  # pairs
    ((0.9, 0.999), [0.8, 0.99, 0.9], False), ((0.9, 0.999), [0.8], False),  # ... of the same length
    ((0.9, 0.999), [0.8, "x"], False), ((0.9, 0.999), [0.8, math.nan], False),  # ... of numbers
    ((0.9, 0.999), [True, 0.99], False), ((0.9, 0.999), 0.9, False), ((0.9, 0.999), None, False),
    ("fused", "fused", True), ("fused", "other", True), ("fused", 1, False), ("fused", None, False),  # others: type
]


@pytest.mark.parametrize("fresh, saved, same", KINDS, ids=[f"{f!r}-{s!r}" for f, s, _ in KINDS])
def test_the_kind_of_an_optimizer_setting(fresh, saved, same):
    assert train_state._same_kind(fresh, saved) is same


def test_a_setting_of_another_kind_is_named_with_its_saved_value():
    fresh = [{"lr": 0.1, "betas": (0.9, 0.999)}, {"lr": 0.1, "nesterov": False}]
    check_same_hyperparameter_types(fresh, [{"lr": 3, "betas": [0.8, 0.9]}, {"lr": 0.5, "nesterov": True}])
    with pytest.raises(ValueError) as raised:
        check_same_hyperparameter_types(fresh, [{"lr": 0.1, "betas": (0.9, 0.999)}, {"lr": "0.5", "nesterov": True}])
    assert str(raised.value) == "optimizer setting lr is '0.5', this optimizer uses float"
    with pytest.raises(ValueError) as raised:
        check_same_hyperparameter_types(fresh, [{"lr": 0.1, "betas": (0.9, 0.999)}, {"lr": 0.5, "nesterov": 0}])
    assert str(raised.value) == "optimizer setting nesterov is 0, this optimizer uses bool"
    with pytest.raises(ValueError) as raised:
        check_same_hyperparameter_types(fresh, [{"lr": 0.1}, {"lr": 0.5, "nesterov": True}])  # a setting missing
    assert str(raised.value) == "optimizer setting betas is None, this optimizer uses tuple"


# -- the engines load optimizer state --------------------------------------------------------------------------------
def momentum_sgd():
    from deepdive.training.engines import TorchEngine

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4)  # weight (4, 3), bias (4,)
    return TorchEngine("cpu", None), model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def test_torch_optimizer_state_of_a_parameter_never_stepped_loads():
    """A parameter without state (its gradient was None at every step: no momentum buffer) is no error."""
    engine, model, optimizer = momentum_sgd()
    model.weight.grad = torch.ones(4, 3)  # the bias has no gradient: no state
    optimizer.step()
    saved = optimizer.state_dict()
    assert list(saved["state"]) == [0]
    _, _, fresh = momentum_sgd()
    engine.load_optimizer_state(fresh, saved)
    assert torch.equal(fresh.state[fresh.param_groups[0]["params"][0]]["momentum_buffer"], torch.ones(4, 3))
    _, _, empty = momentum_sgd()
    engine.load_optimizer_state(empty, momentum_sgd()[2].state_dict())  # no state at all
    assert len(empty.state) == 0


@pytest.mark.parametrize("index, shape, message", [
    (1, (3,), "optimizer state momentum_buffer has shape (3,), its parameter (4,)"),  # a vector of another length
    (0, (3, 4), "optimizer state momentum_buffer has shape (3, 4), its parameter (4, 3)"),
])
def test_torch_optimizer_state_of_another_shape_is_named(index, shape, message):
    engine, model, optimizer = momentum_sgd()
    model.weight.grad, model.bias.grad = torch.ones(4, 3), torch.ones(4)
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"][index]["momentum_buffer"] = torch.zeros(shape)
    with pytest.raises(ValueError) as raised:
        engine.load_optimizer_state(momentum_sgd()[2], saved)
    assert str(raised.value) == message


def test_scratch_optimizer_state_round_trips_through_torch_tensors():
    """The scratch engine hands state.pt tensors and takes them back as the optimizer's arrays."""
    import deepdive.scratch.optim as soptim
    from deepdive.scratch import Tensor
    from deepdive.training.engines import ScratchEngine

    threads = torch.get_num_threads()
    try:
        engine = ScratchEngine(dtype=np.float64)
        params = [Tensor(np.zeros((2, 3)), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)]
        optimizer = soptim.SGD(params, lr=0.5, momentum=0.9)
        grads = [np.arange(6.0).reshape(2, 3), np.array([1.0, -2.0, 0.5])]
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        saved = engine.optimizer_state(optimizer)
        assert isinstance(saved["state"][0]["momentum_buffer"], torch.Tensor)
        fresh_params = [Tensor(np.zeros((2, 3)), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)]
        fresh = soptim.SGD(fresh_params, lr=0.1, momentum=0.5)
        engine.load_optimizer_state(fresh, saved)
        assert (fresh.param_groups[0]["lr"], fresh.param_groups[0]["momentum"]) == (0.5, 0.9)
        for state, g in zip(fresh.state, grads):
            assert type(state["momentum_buffer"]) is np.ndarray and np.array_equal(state["momentum_buffer"], g)
    finally:
        torch.set_num_threads(threads)


# -- the scratch engine's gradient clipping --------------------------------------------------------------------------
def scratch_params(grads):
    from deepdive.scratch import Tensor

    params = [Tensor(np.zeros(g.shape, dtype=g.dtype), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g
    return SimpleNamespace(parameters=lambda: iter(params)), params


def test_scratch_clipping_scales_to_the_global_norm_and_leaves_a_norm_within_it_alone():
    from deepdive.training.engines import ScratchEngine

    threads = torch.get_num_threads()
    try:
        engine = ScratchEngine()
        grads = [np.array([[3.0, 0.0], [0.0, 4.0]], dtype=np.float32), np.array([12.0], dtype=np.float32)]
        model, params = scratch_params(grads)
        assert engine.clip_grad_norm(model, 6.5) == 13.0  # √(9 + 16 + 144)
        for p, g in zip(params, grads):
            assert p.grad.dtype == np.float32 and np.allclose(p.grad, g * (6.5 / (13.0 + 1e-6)), rtol=0, atol=1e-6)
        # a limit equal to the norm (plus the 1e-6 guard): scale 1, the gradients are left as they are
        model, params = scratch_params(grads)
        assert engine.clip_grad_norm(model, 13.0 + 1e-6) == 13.0
        assert all(p.grad is g for p, g in zip(params, grads))
    finally:
        torch.set_num_threads(threads)


# -- the loop's target check -----------------------------------------------------------------------------------------
def target_trainer(accuracy, target, reached=False):
    state = TrainState(global_step=10)
    state.target = {"target_reached": reached}
    return SimpleNamespace(state=state, evaluate=lambda split: (0.7, accuracy), bundle=SimpleNamespace(test=None),
                           steps_per_epoch=4, cfg=SimpleNamespace(target_accuracy=target),
                           watch=Stopwatch(lambda: 0.0, {"train": 42.5}))


def test_a_test_accuracy_equal_to_the_target_reaches_it(caplog):
    from deepdive.training.loop import Trainer

    trainer = target_trainer(0.625, 0.625)
    with caplog.at_level(logging.INFO, logger="deepdive"):
        assert Trainer.check_target(trainer) is True
    assert trainer.state.target == {"target_reached": True, "seconds_to_target": 42.5, "steps_to_target": 10,
                                    "accuracy_at_target": 0.625}
    assert [r.getMessage() for r in caplog.records if r.name == "deepdive"] == [
        "step 10 (epoch 2.50): test acc 62.50% (target 62.50%)"]
    below = target_trainer(0.5, 0.625)
    assert Trainer.check_target(below) is False and below.state.target == {"target_reached": False}
    again = target_trainer(0.75, 0.625, reached=True)
    assert Trainer.check_target(again) is False and again.state.target == {"target_reached": True}
