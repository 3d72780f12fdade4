"""Claims 7, 8 and 9: what the adaptive optimizers are said to do, on ``scratch.optim``'s own classes.

Claim 7, Adagrad. G accumulates g², so each weight's effective step
η/(√G + ε) can only shrink. On a regression whose binary features are active
at very different rates, a rare feature's G stays small, so on the steps where
its feature is in the batch its weight moves further than the frequent ones'
- where plain SGD, whose step is η·g, moves the rare weights least (their
gradient is averaged with the batch's zeros). Adam is measured beside them.

Claim 8, Adadelta. Its step √(E[Δθ²] + ε)/√(E[g²] + ε)·g is unchanged when
the loss (and so every gradient) is multiplied by a constant, as long as the
gradients are large against √ε: the same lr = 1.0 serves every scale. SGD's
η, tuned for one scale, diverges on larger ones (η > 2/L) and crawls on
smaller ones.

Claim 9, Adam. m and v start at 0, so m₁ = (1 − β₁)g and v₁ = (1 − β₂)g²:
biased towards zero. Bias correction divides by (1 − βᵗ). Without it the
first steps are η(1 − β₁ᵗ)/√(1 − β₂ᵗ), 3.2η at t = 1 and up to 6.5η near
t = 10 with the default β's; with it they are η.
"""
from __future__ import annotations

import math

import numpy as np

from deepdive.claims import CONDITIONAL, FAILS, HOLDS, Result

FREQUENCIES = (1.0, 0.5, 0.1, 0.02, 0.005)  # how often each binary feature is 1


def _sparse_problem(rng: np.random.Generator, n: int):
    x = (rng.random((n, len(FREQUENCIES))) < np.array(FREQUENCIES)).astype(float)
    return x, x @ np.ones(len(FREQUENCIES)) + 0.05 * rng.standard_normal(n)


def _minibatch_loss(x, y, w):
    from deepdive.scratch import Tensor

    r = Tensor(x) @ w - Tensor(y)
    return (r * r).sum() * (0.5 / len(y))


def adagrad_steps(fast: bool = False, seed: int = 0) -> Result:
    from deepdive.scratch import Tensor
    from deepdive.scratch import optim

    n, batch, steps = (2048, 32, 150) if fast else (4096, 32, 400)
    rng = np.random.default_rng(seed)
    x, y = _sparse_problem(rng, n)
    d = x.shape[1]
    makers = {"sgd": lambda p: optim.SGD(p, lr=0.05), "adagrad": lambda p: optim.Adagrad(p, lr=0.1),
              "adam": lambda p: optim.Adam(p, lr=0.01)}
    draw = np.random.default_rng(seed + 1)
    order = [draw.choice(n, batch, replace=False) for _ in range(steps)]  # the same batches for each optimizer
    active_steps, errors, effective, gradients = {}, {}, [], []
    for name, make in makers.items():
        w = Tensor(np.zeros(d), requires_grad=True)
        opt = make([w])
        moved = [[] for _ in range(d)]
        for index in order:
            opt.zero_grad()
            _minibatch_loss(x[index], y[index], w).backward()
            before = w.data.copy()
            if name == "adagrad":
                gradients.append(w.grad.copy())
            opt.step()
            if name == "adagrad":
                group = opt.param_groups[0]
                effective.append(group["lr"] / (np.sqrt(opt.state[0]["sum"]) + group["eps"]))
            for j in np.flatnonzero(x[index].any(axis=0)):
                moved[j].append(abs(w.data[j] - before[j]))
        active_steps[name] = [float(np.mean(m)) if m else 0.0 for m in moved]
        errors[name] = np.abs(w.data - 1.0).tolist()
    effective = np.array(effective)
    ratio = {name: s[-1] / s[0] for name, s in active_steps.items()}  # rarest over always-active
    shrinks = bool(np.all(np.diff(effective, axis=0) <= 0))
    holds = shrinks and ratio["adagrad"] > 1 > ratio["sgd"]
    numbers = {"feature_frequencies": list(FREQUENCIES), "mean_step_when_active": active_steps,
               "rare_over_frequent_step": ratio, "final_abs_error": errors, "effective_step_never_rose": shrinks,
               "adagrad_effective_step_always_active_weight": {str(t): float(effective[t - 1, 0])
                                                               for t in (1, 10, 100, steps) if t <= steps}}
    explanation = (f"Adagrad's effective step η/(√G + ε) never rose ({effective[0, 0]:.3f} → "
                   f"{effective[-1, 0]:.4f} for the always-active weight); on steps where its feature was present "
                   f"the rarest weight moved {ratio['adagrad']:.1f}x as far as the always-active one under Adagrad, "
                   f"{ratio['adam']:.1f}x under Adam, {ratio['sgd']:.2f}x under SGD; the weight of the "
                   f"{FREQUENCIES[3]:.0%} feature ended "
                   f"{errors['adagrad'][3]:.2f} from its target under Adagrad, {errors['adam'][3]:.2f} under Adam, "
                   f"{errors['sgd'][3]:.2f} under SGD")
    setup = {"data": f"{n} examples, binary features active with probabilities {list(FREQUENCIES)}, y = Σ x_j + noise",
             "batch": batch, "steps": steps, "lr": {"sgd": 0.05, "adagrad": 0.1, "adam": 0.01},
             "measure": "mean |Δw_j| over the steps whose batch holds feature j"}
    return Result(setup, numbers, HOLDS if holds else FAILS, explanation,
                  f"rare/frequent step: Adagrad {ratio['adagrad']:.1f}x, SGD {ratio['sgd']:.2f}x",
                  {"effective": effective, "gradients": np.array(gradients), "lr": 0.1, "eps": 1e-10})


def plot_adagrad_steps(result: Result, out) -> None:
    from deepdive.claims.common import figure, save_figure

    fig, axes = figure(2, 4.0)
    effective = result.arrays["effective"]
    for j, freq in enumerate(FREQUENCIES):
        shown = np.where(effective[:, j] < 1e3, effective[:, j], np.nan)  # G = 0: the feature not seen yet
        axes[0].semilogy(shown, label=f"feature active {freq:.1%}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("Adagrad's effective step η/(√G + ε)")
    axes[0].legend(fontsize=7)
    steps = result.numbers["mean_step_when_active"]
    positions = np.arange(len(FREQUENCIES))
    for k, (name, values) in enumerate(steps.items()):
        axes[1].bar(positions + (k - 1) * 0.27, values, width=0.27, label=name)
    axes[1].set_xticks(positions, [f"{f:.1%}" for f in FREQUENCIES])
    axes[1].set_xlabel("how often the weight's feature is active")
    axes[1].set_ylabel("mean |Δw| when active")
    axes[1].legend(fontsize=8)
    save_figure(fig, out)


SCALES = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)


def adadelta_scale(fast: bool = False, seed: int = 0) -> Result:
    from deepdive.scratch import Tensor
    from deepdive.scratch import optim

    scales, max_steps = ((1e-3, 1.0, 1e3), 700) if fast else (SCALES, 2000)
    rng = np.random.default_rng(seed)
    n, d = 100, 4
    x = rng.standard_normal((n, d))
    y = x @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)
    w_star = np.linalg.solve(x.T @ x, x.T @ y)
    sgd_lr = 1.0 / np.linalg.eigvalsh(x.T @ x / n)[-1]  # the best constant η at scale 1
    tol = 1e-3  # of the starting gap f(w₀) − f*

    def run(name: str, scale: float):
        """Steps to the tolerance (None if never) and the gap's path, for one optimizer at one loss scale."""
        w = Tensor(np.zeros(d), requires_grad=True)
        opt = optim.SGD([w], lr=sgd_lr) if name == "sgd" else optim.Adadelta([w], lr=1.0)
        gaps = []
        start = 0.5 * scale * np.mean((x @ w.data - y) ** 2) - 0.5 * scale * np.mean((x @ w_star - y) ** 2)
        with np.errstate(all="ignore"):
            for _ in range(max_steps):
                opt.zero_grad()
                (_minibatch_loss(x, y, w) * scale).backward()
                opt.step()
                gap = (0.5 * scale * np.mean((x @ w.data - y) ** 2) - 0.5 * scale * np.mean((x @ w_star - y) ** 2))
                gaps.append(gap / start)
                if not np.isfinite(gaps[-1]) or gaps[-1] > 1e6 or gaps[-1] <= tol:
                    break
        reached = next((i + 1 for i, g in enumerate(gaps) if g <= tol), None)
        return reached, np.array(gaps)

    rows, curves = _runs_over_scales(run, scales, x, n, y)
    ada, sgd, numbers, verdict, explanation = _adadelta_verdict(rows, sgd_lr, tol)
    setup = {"loss": "scale × (1/2n)‖Xw − y‖², n = 100, d = 4", "scales": list(scales),
             "adadelta": "lr 1.0, ρ 0.9, ε 1e-6 (torch's defaults)", "sgd_lr": f"1/λ_max at scale 1 = {sgd_lr:.3f}",
             "max_steps": max_steps,
             "tolerance": "f − f* ≤ 1e-3 of the start"}
    return Result(setup, numbers, verdict, explanation, f"Adadelta converged at {len(ada)}/{len(rows)} scales, "
                  f"SGD at {len(sgd)}/{len(rows)}", {"curves": curves, "scales": scales})


def _runs_over_scales(run, scales, x, n, y) -> tuple[list[dict], dict]:
    """Both optimizers at every loss scale: a row of steps and divergence per scale, the curves for the plot."""
    rows, curves = [], {}
    for scale in scales:
        row = {"scale": scale, "first_gradient_norm": float(np.linalg.norm(scale * x.T @ (-y) / n))}
        for name in ("sgd", "adadelta"):
            reached, gaps = run(name, scale)
            row[f"{name}_steps"] = reached
            row[f"{name}_diverged"] = bool(not np.isfinite(gaps[-1]) or gaps[-1] > 1e6)
            curves[(name, scale)] = gaps
        rows.append(row)
    return rows, curves


def _adadelta_verdict(rows: list[dict], sgd_lr: float, tol: float):
    """Where each optimizer converged, the verdict and its explanation."""
    ada = [r for r in rows if r["adadelta_steps"] is not None]
    sgd = [r for r in rows if r["sgd_steps"] is not None]
    numbers = {"rows": rows, "sgd_lr": float(sgd_lr), "tolerance": tol,
               "adadelta_converged_scales": [r["scale"] for r in ada],
               "sgd_converged_scales": [r["scale"] for r in sgd]}
    if len(ada) == len(rows):
        verdict = HOLDS
    elif ada and len(ada) > len(sgd):
        verdict = CONDITIONAL
    else:
        verdict = FAILS
    steps = [r["adadelta_steps"] for r in ada] or ["-"]
    explanation = (f"Adadelta at lr 1.0 reached the tolerance at {len(ada)} of {len(rows)} loss scales "
                   f"({_scales(ada)}, in {min(steps)}…{max(steps)} steps); SGD with "
                   f"the η best at scale 1 at {len(sgd)} ({_scales(sgd)}; diverged at "
                   f"{_scales([r for r in rows if r['sgd_diverged']]) or 'none'})")
    missed = [r for r in rows if r["adadelta_steps"] is None]
    if missed:
        explanation += (f"; Adadelta missed at {_scales(missed)}, where gradients "
                        f"(~{missed[0]['first_gradient_norm']:.0e}) are not large against √ε = 1e-3")
    return ada, sgd, numbers, verdict, explanation


def _scales(rows) -> str:
    return ", ".join(f"×{r['scale']:g}" for r in rows)


def plot_adadelta_scale(result: Result, out) -> None:
    from deepdive.claims.common import figure, save_figure

    fig, axes = figure(2, 4.0)
    colors = {s: c for s, c in zip(result.arrays["scales"], _cmap(len(result.arrays["scales"])))}
    for ax, name in zip(axes, ("adadelta", "sgd")):
        for scale in result.arrays["scales"]:
            gaps = np.clip(np.nan_to_num(result.arrays["curves"][(name, scale)], nan=1e6, posinf=1e6), 1e-18, 1e6)
            ax.semilogy(np.arange(1, len(gaps) + 1), gaps, color=colors[scale], label=f"loss ×{scale:g}")
        ax.axhline(result.numbers["tolerance"], color="black", linestyle=":")
        ax.set_xlabel("step")
        ax.set_ylabel("(f − f*) / (f₀ − f*)")
        ax.set_title("Adadelta, lr 1.0" if name == "adadelta" else f"SGD, η = {result.numbers['sgd_lr']:.3f} "
                     "(best at scale 1)", fontsize=10)
        ax.legend(fontsize=7)
    save_figure(fig, out)


def _cmap(n: int):
    from deepdive.viz.figures import pyplot

    return [pyplot().cm.viridis(i / max(n - 1, 1)) for i in range(n)]


class UncorrectedAdam:
    """Adam without bias correction: θ −= η m/(√v + ε), m and v as in ``scratch.optim.Adam``."""

    def __init__(self, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = self.v = None

    def step(self, theta: np.ndarray, grad: np.ndarray) -> None:
        b1, b2 = self.betas
        self.m = (1 - b1) * grad if self.m is None else b1 * self.m + (1 - b1) * grad
        self.v = (1 - b2) * grad * grad if self.v is None else b2 * self.v + (1 - b2) * grad * grad
        theta -= self.lr * self.m / (np.sqrt(self.v) + self.eps)


def adam_bias_correction(fast: bool = False, seed: int = 0) -> Result:
    from deepdive.scratch import Tensor
    from deepdive.scratch import optim

    steps, lr, betas = (30 if fast else 200), 1e-3, (0.9, 0.999)
    grad = np.array([1e-3, 1.0, 1e3])  # a constant gradient of three magnitudes: the intended step is η for each
    theta = Tensor(np.zeros(3), requires_grad=True)
    adam = optim.Adam([theta], lr=lr, betas=betas)
    plain, raw = UncorrectedAdam(lr, betas), np.zeros(3)
    corrected_steps, uncorrected_steps, first_m = [], [], None
    for t in range(steps):
        before = theta.data.copy()
        theta.grad = grad.copy()
        adam.step()
        if t == 0:
            first_m = adam.state[0]["exp_avg"].copy()
        corrected_steps.append(np.abs(theta.data - before) / lr)
        raw_before = raw.copy()
        plain.step(raw, grad)
        uncorrected_steps.append(np.abs(raw - raw_before) / lr)
    corrected, uncorrected = np.array(corrected_steps), np.array(uncorrected_steps)
    expected = np.array([(1 - betas[0] ** t) / math.sqrt(1 - betas[1] ** t) for t in range(1, steps + 1)])
    peak = int(np.argmax(uncorrected[:, 1])) + 1
    numbers = {"first_m_over_g": (first_m / grad).tolist(),
               "corrected_step_over_lr_first": corrected[0].tolist(),
               "uncorrected_step_over_lr_first": uncorrected[0].tolist(),
               "uncorrected_peak": {"step": peak, "step_over_lr": float(uncorrected[peak - 1, 1])},
               "corrected_max_deviation_from_lr": float(np.abs(corrected[:, 1:] - 1).max()),
               "uncorrected_vs_formula_max_difference": float(np.abs(uncorrected[:, 1:] - expected[:, None]).max())}
    biased = np.allclose(first_m / grad, 1 - betas[0])
    intended = numbers["corrected_max_deviation_from_lr"] <= 1e-4
    explanation = (f"after one step m = {first_m[1] / grad[1]:.2f}·g (biased towards 0); the corrected steps were "
                   f"η to {numbers['corrected_max_deviation_from_lr']:.0e} for |g| ≥ 1, the uncorrected ones "
                   f"{uncorrected[0, 1]:.2f}η at step 1 and {uncorrected[peak - 1, 1]:.2f}η at step {peak} "
                   f"(η(1 − β₁ᵗ)/√(1 − β₂ᵗ)), too large, not too small; at |g| = 1e-3 ε = 1e-8 "
                   f"shaves {1 - corrected[0, 0]:.0e} off")
    setup = {"gradient": "constant, g = (1e-3, 1, 1e3)", "lr": lr, "betas": list(betas), "eps": 1e-8, "steps": steps,
             "corrected": "scratch.optim.Adam", "uncorrected": "the same recurrences, θ −= η m/(√v + ε)"}
    return Result(setup, numbers, HOLDS if biased and intended else FAILS, explanation,
                  f"step 1: corrected {corrected[0, 1]:.2f}η, uncorrected {uncorrected[0, 1]:.2f}η",
                  {"corrected": corrected, "uncorrected": uncorrected, "expected": expected})


def plot_adam_bias_correction(result: Result, out) -> None:
    from deepdive.claims.common import figure, save_figure

    fig, (ax,) = figure(1, 4.0)
    fig.set_size_inches(7, 4)
    t = np.arange(1, len(result.arrays["corrected"]) + 1)
    ax.plot(t, result.arrays["corrected"][:, 1], label="with bias correction")
    ax.plot(t, result.arrays["uncorrected"][:, 1], label="without")
    ax.plot(t, result.arrays["expected"], linestyle=":", color="black", label="(1 − β₁ᵗ)/√(1 − β₂ᵗ)")
    ax.set_xscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("|Δθ| / η under a constant gradient")
    ax.legend(fontsize=8)
    save_figure(fig, out)
