"""Claim 1: a perceptron learns AND and OR, not XOR; a ReLU MLP learns XOR.

Rosenblatt's rule (``scratch.perceptron.Rosenblatt``: w += y·x on each
mistake) runs on the three truth tables. AND and OR are linearly separable, so
the convergence theorem promises a finite number of mistakes; XOR is not (no
line puts (0,1), (1,0) on one side and (0,0), (1,1) on the other: a line gets
at most three of the four right), so the rule never settles. The MLP is
``deepdive rosenblatt``'s 2 -> 8 -> 2 ReLU network trained by backpropagation
on the scratch engine, over several seeds: one lucky initialisation would not
show that the architecture can.
"""
from __future__ import annotations

import numpy as np

from deepdive.claims import FAILS, HOLDS, Result

POINTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
TABLES = {"and": np.array([-1, -1, -1, 1]), "or": np.array([-1, 1, 1, 1]), "xor": np.array([-1, 1, 1, -1])}
HIDDEN = 8


def perceptron_xor(fast: bool = False, seed: int = 0) -> Result:
    from deepdive.teach.rosenblatt import train_mlp_xor
    from deepdive.scratch.perceptron import Rosenblatt

    max_epochs, seeds = (100, 1) if fast else (1000, 5)
    numbers, fitted = {}, {}
    for name, y in TABLES.items():
        p = Rosenblatt(2).fit(POINTS, y, max_epochs=max_epochs, seed=seed)
        fitted[name] = p
        numbers[f"perceptron_{name}_converged"] = p.converged
        numbers[f"perceptron_{name}_epochs"] = p.epochs_run
        numbers[f"perceptron_{name}_accuracy"] = p.accuracy(POINTS, y)
    mlp_accuracies, mlp_predict = [], None
    for s in range(seed, seed + seeds):
        accuracy, predict = train_mlp_xor(POINTS, TABLES["xor"], hidden=HIDDEN, seed=s)
        mlp_accuracies.append(accuracy)
        mlp_predict = mlp_predict or predict
    numbers["mlp_xor_accuracies"] = mlp_accuracies
    linear_ok = all(numbers[f"perceptron_{n}_converged"] and numbers[f"perceptron_{n}_accuracy"] == 1.0
                    for n in ("and", "or"))
    xor_fails = not numbers["perceptron_xor_converged"] and numbers["perceptron_xor_accuracy"] <= 0.75
    mlp_fits = min(mlp_accuracies) == 1.0
    holds = linear_ok and xor_fails and mlp_fits
    explanation = (f"the perceptron converged on AND ({numbers['perceptron_and_epochs']} epochs) and OR "
                   f"({numbers['perceptron_or_epochs']}); on XOR it was still making mistakes after {max_epochs} "
                   f"epochs ({100 * numbers['perceptron_xor_accuracy']:.0f}% right); the 2-{HIDDEN}-2 ReLU MLP fit XOR "
                   f"in {sum(a == 1.0 for a in mlp_accuracies)} of {seeds} seeds")
    setup = {"data": "the four points of {0,1}², labels ±1", "rule": "Rosenblatt: w += y·x, b += y on a mistake",
             "max_epochs": max_epochs, "mlp": f"2-{HIDDEN}-2, ReLU, Adam lr 0.05, 300 full-batch steps, "
             "scratch engine", "mlp_seeds": list(range(seed, seed + seeds))}
    key = (f"XOR: perceptron {100 * numbers['perceptron_xor_accuracy']:.0f}%, "
           f"MLP {100 * min(mlp_accuracies):.0f}%")
    return Result(setup, numbers, HOLDS if holds else FAILS, explanation, key,
                  {"perceptrons": fitted, "mlp_predict": mlp_predict})


def plot_perceptron_xor(result: Result, out) -> None:
    from deepdive.claims.common import decision_regions, figure, save_figure

    fig, axes = figure(4, 3.4)
    panels = [(f"perceptron, {name.upper()}", TABLES[name], result.arrays["perceptrons"][name].predict)
              for name in TABLES] + [(f"{HIDDEN}-unit ReLU MLP, XOR", TABLES["xor"], result.arrays["mlp_predict"])]
    for ax, (title, y, predict) in zip(axes, panels):
        decision_regions(ax, predict)
        for label, color in ((1, "tab:blue"), (-1, "tab:red")):
            ax.scatter(*POINTS[y == label].T, s=60, color=color, edgecolor="black")
        ax.set_title(f"{title}: {100 * float((predict(POINTS) == y).mean()):.0f}%", fontsize=10)
    save_figure(fig, out)
