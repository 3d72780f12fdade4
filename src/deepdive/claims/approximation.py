"""Claim 14: one hidden layer, given enough units, approximates a smooth function to any ε.

Two measurements on f(x) = sin(2πx), x ∈ [0, 1], error as the largest
|network − f| over 2,001 points:

- constructed: m ReLU units can be given weights by hand that make the network
  the piecewise-linear interpolant of f at m + 1 equally spaced knots,
  g(x) = f(0) + Σₖ cₖ·ReLU(x − xₖ) (cₖ the change of slope at knot xₖ). Its
  error is at most h²·max|f''|/8 with h = 1/m, so it falls as 1/m² and any ε is
  reached with m ≥ π/√(2ε) units - the existence the claim asserts, measured
  on the scratch engine's own Linear and ReLU layers;
- trained: 1-m-1 tanh networks fitted by Adam (scratch engine): what
  gradient descent actually finds, which is not what the theorem promises.
"""
from __future__ import annotations

import math

import numpy as np

from deepdive.claims import FAILS, HOLDS, Result

EPSILON = 0.01


def target(x: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * x)


def interpolant(m: int):
    """A 1-m-1 ReLU network (scratch.nn) equal to f's piecewise-linear interpolant at m + 1 knots."""
    import deepdive.scratch.nn as nn

    knots = np.linspace(0.0, 1.0, m + 1)
    slopes = np.diff(target(knots)) / np.diff(knots)
    net = nn.Sequential(nn.Linear(1, m), nn.ReLU(), nn.Linear(m, 1)).double()
    net[0].weight.data = np.ones((m, 1))
    net[0].bias.data = -knots[:-1]  # unit k turns on at knot k
    net[2].weight.data = np.concatenate([slopes[:1], np.diff(slopes)])[None, :]
    net[2].bias.data = target(knots[:1])
    return net


def approximation(fast: bool = False, seed: int = 0) -> Result:
    import deepdive.scratch.nn as nn
    from deepdive.claims.common import predict, seeded
    from deepdive.scratch import Tensor
    from deepdive.scratch import optim

    grid = np.linspace(0.0, 1.0, 2001)[:, None]
    predicted = math.ceil(math.pi / math.sqrt(2 * EPSILON))  # h²·(2π)²/8 ≤ ε with h = 1/m
    widths = tuple(sorted({2, 4, 8, 16, 32, 64, predicted}))
    constructed = []
    for m in widths:
        error = float(np.abs(predict(interpolant(m), grid) - target(grid)).max())
        constructed.append({"units": m, "max_error": error, "bound": (1 / m) ** 2 * (2 * math.pi) ** 2 / 8})
    trained_widths, steps = ((16,), 500) if fast else ((4, 8, 16, 32), 2000)
    x = np.linspace(0.0, 1.0, 256)[:, None]
    trained, nets = [], {}
    for m in trained_widths:
        seeded(seed)
        net = nn.Sequential(nn.Linear(1, m), nn.Tanh(), nn.Linear(m, 1)).double()
        opt = optim.Adam(net.parameters(), lr=0.01)
        for _ in range(steps):
            opt.zero_grad()
            r = net(Tensor(x)) - Tensor(target(x))
            (r * r).mean().backward()
            opt.step()
        nets[m] = net
        trained.append({"units": m, "max_error": float(np.abs(predict(net, grid) - target(grid)).max())})
    enough = next((c["units"] for c in constructed if c["max_error"] <= EPSILON), None)
    within_bound = all(c["max_error"] <= c["bound"] * (1 + 1e-9) for c in constructed)
    best = min(trained, key=lambda t: t["max_error"])
    numbers = {"epsilon": EPSILON, "constructed": constructed, "units_enough_for_epsilon": enough,
               "units_predicted": predicted, "trained": trained}
    explanation = (f"the hand-built ReLU interpolant's error fell as 1/m² ({constructed[0]['max_error']:.2f} with "
                   f"{widths[0]} units, {constructed[-1]['max_error']:.1e} with {widths[-1]}) and reached "
                   f"ε = {EPSILON} with {enough} units (the bound says {numbers['units_predicted']}); trained by Adam "
                   f"for {steps} steps, tanh networks got to {best['max_error']:.3f} at best ({best['units']} units), "
                   f"and {'not ' if best['max_error'] > EPSILON else ''}within ε")
    setup = {"function": "sin(2πx) on [0, 1]", "error": "max |network − f| over 2,001 points", "epsilon": EPSILON,
             "constructed": "1-m-1 ReLU, weights set to the interpolant at m + 1 knots",
             "constructed_units": list(widths),
             "trained": f"1-m-1 tanh, Adam lr 0.01, {steps} full-batch steps on 256 points",
             "trained_units": list(trained_widths)}
    holds = enough is not None and within_bound
    return Result(setup, numbers, HOLDS if holds else FAILS, explanation,
                  f"ε = {EPSILON} with {enough} ReLU units; trained best {best['max_error']:.3f}",
                  {"grid": grid, "nets": nets, "widths": widths})


def plot_approximation(result: Result, out) -> None:
    from deepdive.claims.common import figure, predict, save_figure

    fig, axes = figure(2, 4.0)
    grid = result.arrays["grid"]
    axes[0].plot(grid, target(grid), color="black", linewidth=2, label="sin(2πx)")
    for m in (4, 8):
        axes[0].plot(grid, predict(interpolant(m), grid), linestyle="--", label=f"{m} ReLU units, constructed")
    for m, net in result.arrays["nets"].items():
        axes[0].plot(grid, predict(net, grid), label=f"{m} tanh units, trained")
    axes[0].legend(fontsize=7)
    c = result.numbers["constructed"]
    axes[1].loglog([r["units"] for r in c], [r["max_error"] for r in c], "o-", label="constructed (ReLU)")
    axes[1].loglog([r["units"] for r in c], [r["bound"] for r in c], ":", color="gray", label="h²·max|f''|/8")
    t = result.numbers["trained"]
    axes[1].loglog([r["units"] for r in t], [r["max_error"] for r in t], "s-", label="trained (tanh)")
    axes[1].axhline(result.numbers["epsilon"], color="black", linestyle=":", label="ε")
    axes[1].set_xticks(result.arrays["widths"], [str(m) for m in result.arrays["widths"]])
    axes[1].minorticks_off()
    axes[1].set_xlabel("hidden units m")
    axes[1].set_ylabel("max |network − f|")
    axes[1].legend(fontsize=7)
    save_figure(fig, out)
