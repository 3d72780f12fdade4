"""Optimizer paths on 2-D surfaces: the article's optimizer figure, computed (no drawing here).

Each path is stepped by the very optimizer classes ``deepdive.scratch`` trains
networks with (``scratch.optim``, built by ``optim.build_optimizer``), on one
parameter vector θ = (x, y) whose gradient is the surface's, written out:

- ``quadratic``  f = ½(x² + 25y²): a long narrow valley. Gradient descent's
  step is limited by the steep direction (η < 2/25), so it crawls along the
  flat one and zigzags across the steep one - "SGD without momentum shows
  zigzagging behavior"; momentum (v = γv + η∇f; θ −= v) damps the zigzag.
- ``rosenbrock`` f = (1 − x)² + 100(y − x²)²: a curved valley, minimum (1, 1).
- ``saddle``     f = ½x² + ¼y⁴ − ½y²: a saddle at the origin between minima at
  (0, ±1); a path starting almost on the ridge shows who escapes first.
- ``noisy``      the quadratic with Gaussian noise (σ = 2) added to every
  gradient, seeded: what mini-batch SGD sees.

``steps_to_tolerance`` is the first step from which f(θ) − f_min stays ≤ tol,
so the article's claim (momentum converges faster) is a measured number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from deepdive.errors import UserError


@dataclass(frozen=True)
class Surface:
    title: str
    f: Callable[[np.ndarray], float]
    grad: Callable[[np.ndarray], np.ndarray]
    start: tuple[float, float]
    minimum: tuple[float, float]
    box: tuple[tuple[float, float], tuple[float, float]]  # (x range, y range) for the contour plot
    lr: dict = field(default_factory=dict)  # each optimizer's default learning rate on this surface
    noise: float = 0.0  # std of the Gaussian noise added to every gradient
    momentum: float | None = None  # γ by default on this surface (None: the optimizer's own, 0.9)
    steps: int = 300  # default number of steps
    tol: float = 1e-4  # default tolerance on f − f_min


def _quadratic(t):
    return 0.5 * (t[0] ** 2 + 25 * t[1] ** 2)


def _quadratic_grad(t):
    return np.array([t[0], 25 * t[1]])


def _rosenbrock(t):
    return (1 - t[0]) ** 2 + 100 * (t[1] - t[0] ** 2) ** 2


def _rosenbrock_grad(t):
    return np.array([-2 * (1 - t[0]) - 400 * t[0] * (t[1] - t[0] ** 2), 200 * (t[1] - t[0] ** 2)])


def _saddle(t):
    return 0.5 * t[0] ** 2 + 0.25 * t[1] ** 4 - 0.5 * t[1] ** 2


def _saddle_grad(t):
    return np.array([t[0], t[1] ** 3 - t[1]])


# η = 0.06 puts gradient descent's steep-direction factor at 1 − 25η = −0.5: it overshoots each step, the
# zigzag. γ = 0.7 by default there: at γ = 0.9 momentum itself oscillates and, at η = 0.07, loses (89 steps
# to gradient descent's 80) - `--momentum 0.9 --lr 0.07` shows the claim failing.
QUADRATIC_LR = {"sgd": 0.06, "momentum": 0.06, "nesterov": 0.03, "adagrad": 0.5, "adadelta": 1.0, "rmsprop": 0.01,
                "adam": 0.1}
SURFACES = {
    "quadratic": Surface("f = ½(x² + 25y²)", _quadratic, _quadratic_grad, (-4.5, 1.0), (0.0, 0.0),
                         ((-5, 5), (-1.6, 1.6)), QUADRATIC_LR, momentum=0.7),
    "rosenbrock": Surface("f = (1 − x)² + 100(y − x²)²", _rosenbrock, _rosenbrock_grad, (-1.5, 2.0), (1.0, 1.0),
                          ((-2, 2), (-1, 3)), {"sgd": 5e-4, "momentum": 5e-4, "nesterov": 5e-4, "adagrad": 0.5,
                                               "adadelta": 1.0, "rmsprop": 0.01, "adam": 0.05}, steps=3000),
    "saddle": Surface("f = ½x² + ¼y⁴ − ½y²", _saddle, _saddle_grad, (2.5, 1e-3), (0.0, 1.0), ((-3, 3), (-1.8, 1.8)),
                      {"sgd": 0.1, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.5, "adadelta": 1.0, "rmsprop": 0.01,
                       "adam": 0.1}),
    "noisy": Surface("f = ½(x² + 25y²), noisy gradients (σ = 2)", _quadratic, _quadratic_grad, (-4.5, 1.0), (0.0, 0.0),
                     ((-5, 5), (-1.6, 1.6)), QUADRATIC_LR, noise=2.0, momentum=0.7, tol=1.0),
}
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam")


@dataclass
class Path:
    optimizer: str
    lr: float
    points: np.ndarray  # (steps + 1, 2): θ before the first step, then after each
    losses: np.ndarray  # f(θ) − f_min at each point
    steps_to_tolerance: int | None

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])


def surface(name: str) -> Surface:
    if name not in SURFACES:
        from deepdive.config.names import did_you_mean
        raise UserError(f"unknown surface {name!r}{did_you_mean(name, SURFACES)}: choose one of {', '.join(SURFACES)}")
    return SURFACES[name]


def gradients(s: Surface, seed: int):
    """The gradient the optimizers see: the surface's, plus seeded noise on the noisy surface."""
    rng = np.random.default_rng(seed)

    def grad(theta: np.ndarray) -> np.ndarray:
        g = s.grad(theta)
        return g + rng.normal(0.0, s.noise, size=2) if s.noise else g
    return grad


def run_path(name: str, s: Surface, steps: int, tol: float, lr: float | None = None, momentum: float | None = None,
             seed: int = 0) -> Path:
    """``steps`` steps of optimizer ``name`` (a deepdive.scratch optimizer) from the surface's start."""
    from deepdive import scratch
    from deepdive.training.optim import build_optimizer
    from deepdive.scratch import optim as scratch_optim

    lr = s.lr[name] if lr is None else lr
    if name not in ("momentum", "nesterov"):
        momentum = None  # γ is momentum's: gradient descent stays plain, rmsprop keeps its own
    elif momentum is None:
        momentum = s.momentum
    theta = scratch.Tensor(np.array(s.start, dtype=np.float64), requires_grad=True)
    optimizer = build_optimizer(name, [theta], lr, momentum, optim=scratch_optim)
    grad, f_min = gradients(s, seed), s.f(np.array(s.minimum))
    points = [theta.data.copy()]
    for _ in range(steps):
        with np.errstate(all="ignore"):  # a diverging path overflows: it ends below, without warnings
            theta.grad = grad(theta.data)
            optimizer.step()
        if not np.all(np.isfinite(theta.data)):
            break  # diverged: the path ends where it left the plane
        points.append(theta.data.copy())
    points = np.array(points)
    with np.errstate(all="ignore"):
        losses = np.array([s.f(p) - f_min for p in points])
    return Path(name, lr, points, losses, settled_at(losses, tol))


def settled_at(losses: np.ndarray, tol: float) -> int | None:
    """The first step from which f − f_min stays at or below ``tol`` to the end (None: it does not end
    there). Not the first crossing: an oscillating or noisy path may dip under and come back."""
    above = np.flatnonzero(~(losses <= tol))
    if above.size == 0:
        return 0
    return None if above[-1] == len(losses) - 1 else int(above[-1] + 1)


def run_paths(surface_name: str, optimizers: list[str], steps: int | None = None, tol: float | None = None,
              lr: float | None = None, momentum: float | None = None, seed: int = 0) -> list[Path]:
    s = surface(surface_name)
    steps, tol = steps or s.steps, tol or s.tol
    unknown = [o for o in optimizers if o not in OPTIMIZER_NAMES]
    if unknown:
        from deepdive.config.names import did_you_mean
        raise UserError(f"unknown optimizer {unknown[0]!r}{did_you_mean(unknown[0], OPTIMIZER_NAMES)}: choose from "
                        f"{', '.join(OPTIMIZER_NAMES)}")
    return [run_path(o, s, steps, tol, lr, momentum, seed) for o in optimizers]


def momentum_verdict(paths: list[Path], steps: int) -> str | None:
    """The article's claim, measured: does momentum reach the tolerance in fewer steps than plain GD?"""
    by_name = {p.optimizer: p for p in paths}
    if "sgd" not in by_name or "momentum" not in by_name:
        return None
    gd, mom = by_name["sgd"].steps_to_tolerance, by_name["momentum"].steps_to_tolerance
    shown = {k: (f"{v} steps" if v is not None else f"not within {steps} steps") for k, v in
             (("gd", gd), ("momentum", mom))}
    if mom is None and gd is None:
        return f"neither momentum nor gradient descent reached the tolerance within {steps} steps: no verdict " \
               "(give more --steps or a larger --tol)"
    if mom is not None and (gd is None or mom < gd):
        return (f"momentum: {shown['momentum']} to the tolerance, gradient descent: {shown['gd']}: the article's "
                "claim (momentum dampens the zigzag and converges faster) holds for these settings")
    return (f"momentum: {shown['momentum']}, gradient descent: {shown['gd']}: the article's claim that momentum "
            "converges faster does NOT hold for these settings (try a smaller --lr or --momentum, or more --steps)")
