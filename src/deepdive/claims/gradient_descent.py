"""Claims 3 and 4: gradient descent reaches the least-squares optimum; mini-batch noise falls as 1/B.

Least squares, L(w) = (1/2n)‖Xw − y‖², has the closed-form minimum
w* = (XᵀX)⁻¹Xᵀy. Gradient descent, w ← w − η∇L with ∇L = Xᵀ(Xw − y)/n and
η = 1/λ_max(XᵀX/n), contracts the error at least by (1 − 1/κ) a step
(κ = λ_max/λ_min): it gets as close to w* as float64 allows.

A mini-batch gradient g_B averages B per-example gradients g_i. Drawn without
replacement from n examples, its variance about the full gradient g is

    E‖g_B − g‖² = (σ²/B)·(n − B)/(n − 1),      σ² = (1/n) Σ ‖g_i − g‖²

(the factor (n − B)/(n − 1) is the finite-population correction; with
replacement it would be σ²/B exactly). The claim's measurement: the engine's
backward on many random batches of each size, against that prediction.
"""
from __future__ import annotations

import numpy as np

from deepdive.claims import CONDITIONAL, FAILS, HOLDS, Result


def _problem(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Correlated features (so κ > 1 and the descent is not trivial) and noisy linear targets."""
    x = rng.standard_normal((n, d)) @ (np.eye(d) + 0.5 * rng.standard_normal((d, d))) + 1.0
    y = x @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)
    return x, y


def _loss(x: np.ndarray, y: np.ndarray, w):
    """L = (1/2n)‖Xw − y‖² on the scratch engine (``w`` a Tensor that requires grad)."""
    from deepdive.scratch import Tensor

    r = Tensor(x) @ w - Tensor(y)
    return (r * r).sum() * (0.5 / len(y))


def _gradient(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """∇L at w, by the scratch engine's backward."""
    from deepdive.scratch import Tensor

    t = Tensor(w, requires_grad=True)
    _loss(x, y, t).backward()
    return t.grad


def least_squares(fast: bool = False, seed: int = 0) -> Result:
    from deepdive.scratch import Tensor
    from deepdive.scratch.optim import SGD

    n, d, max_steps = (50, 4, 1500) if fast else (200, 6, 5000)
    rng = np.random.default_rng(seed)
    x, y = _problem(rng, n, d)
    w_star = np.linalg.solve(x.T @ x, x.T @ y)
    eigen = np.linalg.eigvalsh(x.T @ x / n)
    lr, kappa = 1.0 / eigen[-1], eigen[-1] / eigen[0]
    w = Tensor(np.zeros(d), requires_grad=True)
    opt = SGD([w], lr=lr)
    distances = [float(np.linalg.norm(w.data - w_star))]
    tol = float(1e-10 * (1 + np.linalg.norm(w_star)))
    for _ in range(max_steps):
        opt.zero_grad()
        _loss(x, y, w).backward()
        opt.step()
        distances.append(float(np.linalg.norm(w.data - w_star)))
        if distances[-1] <= tol:
            break
    steps = len(distances) - 1

    def loss(v):
        return float(0.5 * np.mean((x @ v - y) ** 2))
    numbers = {"steps": steps, "distance_to_closed_form": distances[-1], "tolerance": tol,
               "loss_gap": loss(w.data) - loss(w_star), "condition_number": float(kappa), "lr": float(lr),
               "bound_steps": int(np.ceil(np.log(tol / distances[0]) / np.log(1 - 1 / kappa)))}
    holds = distances[-1] <= tol
    explanation = (f"from w = 0, {steps} steps of η = 1/λ_max brought w to {distances[-1]:.1e} of the closed form "
                   f"(κ = {kappa:.0f}; the (1 − 1/κ)^t bound promises it within {numbers['bound_steps']} steps)"
                   if holds else f"after {steps} steps w is still {distances[-1]:.1e} from the closed form")
    setup = {"n": n, "d": d, "loss": "(1/2n)‖Xw − y‖²", "lr": "1/λ_max(XᵀX/n)", "start": "w = 0",
             "closed_form": "(XᵀX)⁻¹Xᵀy", "max_steps": max_steps, "gradient": "scratch engine backward"}
    return Result(setup, numbers, HOLDS if holds else FAILS, explanation, f"‖w − w*‖ = {distances[-1]:.0e} "
                  f"after {steps} steps", {"distances": np.array(distances), "kappa": kappa, "w": w.data.copy(),
                                           "w_star": w_star, "x": x, "y": y})


def plot_least_squares(result: Result, out) -> None:
    from deepdive.claims.common import figure, save_figure

    fig, (ax,) = figure(1, 4.0)
    fig.set_size_inches(7, 4)
    d = result.arrays["distances"]
    t = np.arange(len(d))
    ax.semilogy(t, np.maximum(d, 1e-300), label="gradient descent ‖w_t − w*‖")
    ax.semilogy(t, d[0] * (1 - 1 / result.arrays["kappa"]) ** t, linestyle="--", color="gray",
                label="bound ‖w₀ − w*‖(1 − 1/κ)^t")
    ax.axhline(result.numbers["tolerance"], color="black", linestyle=":", label="tolerance")
    ax.set_xlabel("step")
    ax.set_ylabel("distance to the closed-form optimum")
    ax.legend(fontsize=8)
    save_figure(fig, out)


def per_example_gradients(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """g_i = x_i(x_iᵀw − y_i), written out: the prediction's ingredients (not the measurement)."""
    return x * (x @ w - y)[:, None]


def minibatch_variance(fast: bool = False, seed: int = 0) -> Result:
    n, d = (512, 6) if fast else (2048, 8)
    sizes = (1, 4, 16, 64) if fast else (1, 2, 4, 8, 16, 32, 64, 128, 256)
    draws = 150 if fast else 400
    rng = np.random.default_rng(seed)
    x, y = _problem(rng, n, d)
    w = rng.standard_normal(d)  # a point on the way, not the optimum (where g = 0)
    full = _gradient(x, y, w)
    g_i = per_example_gradients(x, y, w)
    sigma2 = float(np.mean(np.sum((g_i - g_i.mean(0)) ** 2, axis=1)))
    measured, predicted = [], []
    for b in sizes:
        total = 0.0
        for _ in range(draws):
            index = rng.choice(n, size=b, replace=False)
            total += float(np.sum((_gradient(x[index], y[index], w) - full) ** 2))
        measured.append(total / draws)
        predicted.append(sigma2 / b * (n - b) / (n - 1))
    ratios = [m / p for m, p in zip(measured, predicted)]
    slope = float(np.polyfit(np.log(sizes), np.log(measured), 1)[0])
    tolerance = 0.25 if fast else 0.2
    within = all(abs(r - 1) <= tolerance for r in ratios)
    numbers = {"batch_sizes": list(sizes), "variance_measured": measured, "variance_predicted": predicted,
               "measured_over_predicted": ratios, "loglog_slope": slope, "sigma2": sigma2, "draws_per_size": draws}
    verdict = HOLDS if within and abs(slope + 1) <= 0.15 else CONDITIONAL if abs(slope + 1) <= 0.3 else FAILS
    explanation = (f"over B = {sizes[0]}…{sizes[-1]} the variance fell with slope {slope:.2f} on log-log axes "
                   f"(1/B is −1); measured/predicted {min(ratios):.2f}…{max(ratios):.2f} "
                   f"({draws} batches each, tolerance ±{tolerance:.0%})")
    setup = {"n": n, "d": d, "loss": "least squares at a fixed w", "sampling": "B distinct examples per batch",
             "prediction": "σ²/B·(n − B)/(n − 1)", "gradient": "scratch engine backward", "draws": draws}
    return Result(setup, numbers, verdict, explanation, f"slope {slope:.2f} (1/B: −1)",
                  {"x": x, "y": y, "w": w})


def plot_minibatch_variance(result: Result, out) -> None:
    from deepdive.claims.common import figure, save_figure

    fig, (ax,) = figure(1, 4.0)
    fig.set_size_inches(7, 4)
    b = np.array(result.numbers["batch_sizes"])
    ax.loglog(b, result.numbers["variance_measured"], "o", label="measured E‖g_B − g‖²")
    ax.loglog(b, result.numbers["variance_predicted"], "-", color="gray", label="σ²/B·(n − B)/(n − 1)")
    ax.loglog(b, result.numbers["sigma2"] / b, ":", color="black", label="σ²/B")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("variance of the mini-batch gradient")
    ax.legend(fontsize=8)
    save_figure(fig, out)
