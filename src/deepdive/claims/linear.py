"""Claim 2: without an activation, stacked linear layers collapse to one.

    W₃(W₂(W₁x + b₁) + b₂) + b₃ = (W₃W₂W₁)x + (W₃W₂b₁ + W₃b₂ + b₃)

Three ``scratch.nn.Linear`` layers in float64 are run on random inputs and
compared with the one collapsed matrix and bias. Then the consequence: the
same 2-8-8-2 network trained on XOR without activations is a linear
classifier, whose best cross-entropy on XOR's symmetric points is reached by
predicting ½ everywhere (loss ln 2, no better than a coin); with ReLUs
between the layers it fits XOR.
"""
from __future__ import annotations

import math

import numpy as np

from deepdive.claims import FAILS, HOLDS, Result
from deepdive.claims.perceptron import POINTS, TABLES


def collapse(layers) -> tuple[np.ndarray, np.ndarray]:
    """The one (W, b) that a stack of linear layers computes: W = W_k…W₁, b folded through."""
    w = np.eye(layers[0].weight.data.shape[1])
    b = np.zeros(w.shape[0])
    for layer in layers:
        w = layer.weight.data @ w
        b = layer.weight.data @ b + layer.bias.data
    return w, b


def linear_collapse(fast: bool = False, seed: int = 0) -> Result:
    import deepdive.scratch.nn as nn
    from deepdive.claims.common import fit_classifier, predict, seeded

    rng = seeded(seed)
    sizes = (4, 16, 16, 3)
    layers = [nn.Linear(a, b).double() for a, b in zip(sizes, sizes[1:])]
    x = rng.standard_normal((64, sizes[0]))
    stacked = predict(nn.Sequential(*layers), x)
    w, b = collapse(layers)
    gap = float(np.abs(stacked - (x @ w.T + b)).max())

    steps = 150 if fast else 400
    labels = (TABLES["xor"] > 0).astype(np.int64)
    results = {}
    for name, activation in (("linear", None), ("relu", nn.ReLU)):
        seeded(seed)
        mods = [nn.Linear(2, 8), *([activation()] if activation else []), nn.Linear(8, 8),
                *([activation()] if activation else []), nn.Linear(8, 2)]
        model = nn.Sequential(*mods).double()
        losses = fit_classifier(model, POINTS, labels, steps, lr=0.05)
        accuracy = float((predict(model, POINTS).argmax(1) == labels).mean())
        results[name] = (losses, accuracy, model)
    numbers = {"max_abs_difference_stacked_vs_collapsed": gap, "collapsed_matrix_shape": list(w.shape),
               "xor_accuracy_without_activation": results["linear"][1],
               "xor_loss_without_activation": results["linear"][0][-1], "ln2": math.log(2),
               "xor_accuracy_with_relu": results["relu"][1], "xor_loss_with_relu": results["relu"][0][-1]}
    holds = gap <= 1e-12 and results["linear"][1] < 1.0 and results["relu"][1] == 1.0
    explanation = (f"three stacked layers equal one {w.shape[0]}x{w.shape[1]} matrix to {gap:.1e}; without "
                   f"activations the XOR network ends at loss {results['linear'][0][-1]:.3f} (ln 2 = 0.693), "
                   f"{100 * results['linear'][1]:.0f}% right; with ReLUs {100 * results['relu'][1]:.0f}%")
    setup = {"stack": "Linear 4->16->16->3, float64, no activation, 64 random inputs",
             "xor_network": f"2-8-8-2 with and without ReLU, Adam lr 0.05, {steps} full-batch steps, scratch engine"}
    arrays = {"weights": [layer.weight.data for layer in layers], "biases": [layer.bias.data for layer in layers],
              "x": x, "outputs": stacked, "losses": {k: v[0] for k, v in results.items()},
              "models": {k: v[2] for k, v in results.items()}}
    return Result(setup, numbers, HOLDS if holds else FAILS, explanation, f"stacked vs collapsed {gap:.0e}; "
                  f"XOR without activation {100 * results['linear'][1]:.0f}%", arrays)


def plot_linear_collapse(result: Result, out) -> None:
    from deepdive.claims.common import decision_regions, figure, predict, save_figure

    fig, axes = figure(3, 3.6)
    for name, color in (("linear", "tab:red"), ("relu", "tab:blue")):
        axes[0].plot(result.arrays["losses"][name], color=color, label="no activation" if name == "linear" else "ReLU")
    axes[0].axhline(math.log(2), color="black", linestyle=":", label="ln 2")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("cross-entropy on XOR")
    axes[0].legend(fontsize=8)
    for ax, name in zip(axes[1:], ("linear", "relu")):
        model = result.arrays["models"][name]
        decision_regions(ax, lambda p, m=model: np.where(predict(m, p).argmax(1) == 1, 1, -1))
        for label, color in ((1, "tab:blue"), (-1, "tab:red")):
            ax.scatter(*POINTS[TABLES["xor"] == label].T, s=60, color=color, edgecolor="black")
        ax.set_title("2-8-8-2 " + ("without activation" if name == "linear" else "with ReLU"), fontsize=10)
    save_figure(fig, out)
