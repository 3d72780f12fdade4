"""``deepdive.scratch.optim``: the article's optimizers, with torch.optim's semantics and defaults.

Each ``step()`` reads ``p.grad`` of every parameter and updates ``p.data`` in
place. State (momentum buffers, moment estimates, step counts) is kept per
parameter and round-trips through ``state_dict()`` as plain arrays and numbers,
so scratch runs checkpoint and resume like torch runs.
"""
from __future__ import annotations

import math

import numpy as np


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``state_dict()``, as torch.optim.Optimizer.

    ``params`` is a list of parameters or, as in torch, a list of groups
    ``{"params": [...], "weight_decay": ...}`` whose keys override the defaults
    for that group (weight decay on weights only, for example).
    """

    defaults: dict = {}

    def __init__(self, params, **hyper):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for key, value in [kv for g in [hyper, *groups] for kv in g.items()]:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"invalid {key}: {value}")
        self.hyper = {**self.defaults, **hyper}  # the defaults every group starts from
        self.param_groups: list[dict] = [{**self.hyper, **g, "params": list(g["params"])} for g in groups]
        self.params = [p for g in self.param_groups for p in g["params"]]
        self.state: list[dict] = [{} for _ in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None if set_to_none or p.grad is None else np.zeros_like(p.grad)

    def step(self) -> None:
        states = iter(self.state)
        for group in self.param_groups:
            for p in group["params"]:
                state = next(states)
                if p.grad is not None:
                    self.update(p.data, p.grad, state, group)

    def update(self, theta: np.ndarray, grad: np.ndarray, state: dict, h: dict) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
                "state": [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                          for s in self.state]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["state"]) != len(self.params):
            raise ValueError("optimizer state holds a different number of parameters")
        groups = state.get("groups") or [state["hyper"]]  # "hyper": the one-group format of earlier versions
        if len(groups) != len(self.param_groups):
            raise ValueError("optimizer state holds a different number of parameter groups")
        for group, saved in zip(self.param_groups, groups):
            group.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items() if k != "params"})
        self.state = [{k: (np.array(v, dtype=p.data.dtype) if hasattr(v, "shape") and np.ndim(v) else v)
                       for k, v in s.items()} for s, p in zip(state["state"], self.params)]
        for s, p in zip(self.state, self.params):
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != p.data.shape:
                    raise ValueError(f"optimizer state {k} has shape {v.shape}, its parameter {p.data.shape}")


class SGD(Optimizer):
    """Mini-batch SGD with momentum, as torch.optim.SGD.

        g = ∇L + λθ                       (weight decay λ)
        v = γ v + (1 − τ) g               (momentum γ, dampening τ; v = g on the first step)
        θ = θ − η (g + γ v)  if nesterov, else  θ = θ − η v

    The article writes momentum as v = γv + η∇L; θ = θ − v: the same steps as
    this form while η is constant (its v is η times this v), different once η
    changes during training.
    """

    defaults = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False}

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                         nesterov=nesterov)

    def update(self, theta, grad, state, h):
        if h["weight_decay"]:
            grad = grad + h["weight_decay"] * theta
        if h["momentum"]:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()
            else:
                buf = state["momentum_buffer"]
                buf *= h["momentum"]
                buf += (1 - h["dampening"]) * grad
            buf = state["momentum_buffer"]
            grad = grad + h["momentum"] * buf if h["nesterov"] else buf
        theta -= h["lr"] * grad


class Adagrad(Optimizer):
    """Adagrad: G = G + g²;  θ = θ − η_t g / (√G + ε),  η_t = η / (1 + (t − 1)·lr_decay).

    The article: each parameter's step shrinks with the sum of its squared past gradients.
    """

    defaults = {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10}

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)

    def update(self, theta, grad, state, h):
        if "sum" not in state:
            state["step"], state["sum"] = 0, np.full_like(theta, h["initial_accumulator_value"])
        state["step"] += 1
        if h["weight_decay"]:
            grad = grad + h["weight_decay"] * theta
        lr = h["lr"] / (1 + (state["step"] - 1) * h["lr_decay"])
        state["sum"] += grad * grad
        theta -= lr * grad / (np.sqrt(state["sum"]) + h["eps"])


class Adadelta(Optimizer):
    """Adadelta (Zeiler): steps in the units of θ, no hand-tuned global rate needed.

        E[g²] = ρ E[g²] + (1 − ρ) g²
        Δθ = − √(E[Δθ²] + ε) / √(E[g²] + ε) · g
        E[Δθ²] = ρ E[Δθ²] + (1 − ρ) Δθ²;   θ = θ + η Δθ   (torch's lr η, default 1.0)
    """

    defaults = {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        super().__init__(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)

    def update(self, theta, grad, state, h):
        if "square_avg" not in state:
            state["step"], state["square_avg"], state["acc_delta"] = 0, np.zeros_like(theta), np.zeros_like(theta)
        state["step"] += 1
        if h["weight_decay"]:
            grad = grad + h["weight_decay"] * theta
        rho, eps = h["rho"], h["eps"]
        sq, acc = state["square_avg"], state["acc_delta"]
        sq *= rho
        sq += (1 - rho) * grad * grad
        delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * grad
        acc *= rho
        acc += (1 - rho) * delta * delta
        theta -= h["lr"] * delta


class RMSprop(Optimizer):
    """RMSprop: E[g²] = α E[g²] + (1 − α) g²;  θ = θ − η g / (√E[g²] + ε) (with optional momentum)."""

    defaults = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False}

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=centered)

    def update(self, theta, grad, state, h):
        if "square_avg" not in state:
            state["step"], state["square_avg"] = 0, np.zeros_like(theta)
            if h["momentum"]:
                state["momentum_buffer"] = np.zeros_like(theta)
            if h["centered"]:
                state["grad_avg"] = np.zeros_like(theta)
        state["step"] += 1
        if h["weight_decay"]:
            grad = grad + h["weight_decay"] * theta
        sq = state["square_avg"]
        sq *= h["alpha"]
        sq += (1 - h["alpha"]) * grad * grad
        if h["centered"]:
            ga = state["grad_avg"]
            ga *= h["alpha"]
            ga += (1 - h["alpha"]) * grad
            denom = np.sqrt(sq - ga * ga) + h["eps"]
        else:
            denom = np.sqrt(sq) + h["eps"]
        if h["momentum"]:
            buf = state["momentum_buffer"]
            buf *= h["momentum"]
            buf += grad / denom
            theta -= h["lr"] * buf
        else:
            theta -= h["lr"] * grad / denom


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015). The article names Adam among the adaptive optimizers but gives no
    formula; this is the paper's update, which torch.optim.Adam computes:

        m = β₁ m + (1 − β₁) g            v = β₂ v + (1 − β₂) g²
        m̂ = m / (1 − β₁ᵗ)                v̂ = v / (1 − β₂ᵗ)
        θ = θ − η m̂ / (√v̂ + ε)          (ε added after the square root, as in torch)

    ``weight_decay`` adds λθ to g (L2, coupled), as torch.optim.Adam does.
    """

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    def update(self, theta, grad, state, h):
        if "exp_avg" not in state:
            state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, np.zeros_like(theta), np.zeros_like(theta)
        state["step"] += 1
        t, (b1, b2) = state["step"], h["betas"]
        if h["weight_decay"]:
            if self.decoupled:
                theta *= 1 - h["lr"] * h["weight_decay"]
            else:
                grad = grad + h["weight_decay"] * theta
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        bias1, bias2 = 1 - b1 ** t, 1 - b2 ** t
        denom = np.sqrt(v) / math.sqrt(bias2) + h["eps"]
        theta -= (h["lr"] / bias1) * m / denom


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, θ = θ − ηλθ before the Adam step (default λ = 0.01)."""

    defaults = {**Adam.defaults, "weight_decay": 1e-2}
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
