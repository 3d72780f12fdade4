"""``deepdive rosenblatt``: Rosenblatt's rule on separable data and on XOR, beside a
2-layer MLP trained by backpropagation on the same XOR data (the scratch engine).

The perceptron converges in a few epochs on linearly separable points and never
on XOR (no line separates XOR's classes); a hidden layer with ReLU fits it.
"""
from __future__ import annotations

import numpy as np


def separable_blobs(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian clouds on either side of the line x₁ + x₂ = 0, with a margin."""
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 2 == 0, 1, -1)
    x = rng.normal(scale=0.5, size=(n, 2)) + y[:, None] * 1.5
    return x, y


def xor_points(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy points near the four corners (±1, ±1); the label is the sign of x₁·x₂ (XOR of signs)."""
    rng = np.random.default_rng(seed)
    corners = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=float)
    labels = np.array([1, 1, -1, -1])
    idx = np.arange(n) % 4
    return corners[idx] + rng.normal(scale=0.15, size=(n, 2)), labels[idx]


def train_mlp_xor(x: np.ndarray, y: np.ndarray, hidden: int = 8, epochs: int = 300, lr: float = 0.05,
                  seed: int = 0) -> float:
    """A 2 -> hidden -> 2 MLP (ReLU) trained by backprop with Adam on the scratch engine; returns accuracy."""
    import deepdive.scratch as scratch
    import deepdive.scratch.nn as nn
    import deepdive.scratch.optim as optim

    np.random.seed(seed)
    model = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2)).double()
    opt = optim.Adam(model.parameters(), lr=lr)
    targets = (y > 0).astype(np.int64)
    inputs = scratch.Tensor(x.astype(np.float64))
    for _ in range(epochs):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        opt.step()
    with scratch.no_grad():
        predicted = model(inputs).data.argmax(axis=1)
    return float((predicted == targets).mean())


def run(max_epochs: int = 100, seed: int = 0) -> dict:
    from deepdive.scratch.perceptron import Rosenblatt

    results = {}
    for name, (x, y) in (("separable", separable_blobs(seed=seed)), ("xor", xor_points(seed=seed))):
        p = Rosenblatt(2).fit(x, y, max_epochs=max_epochs, seed=seed)
        results[name] = {"perceptron_converged": p.converged, "perceptron_epochs": p.epochs_run,
                         "perceptron_accuracy": p.accuracy(x, y)}
    x, y = xor_points(seed=seed)
    results["xor"]["mlp_accuracy"] = train_mlp_xor(x, y, seed=seed)
    return results


def format_results(results: dict, max_epochs: int) -> list[str]:
    sep, xor = results["separable"], results["xor"]
    lines = [
        f"Rosenblatt's perceptron (w += y·x on each mistake), at most {max_epochs} epochs:",
        f"  linearly separable data: {'converged' if sep['perceptron_converged'] else 'did NOT converge'} after "
        f"{sep['perceptron_epochs']} epoch(s), accuracy {100 * sep['perceptron_accuracy']:.1f}%",
        f"  XOR: {'converged' if xor['perceptron_converged'] else 'did not converge'} after "
        f"{xor['perceptron_epochs']} epochs, accuracy {100 * xor['perceptron_accuracy']:.1f}% "
        "(no straight line separates XOR)",
        f"2-layer MLP (2 -> 8 -> 2, ReLU) trained by backpropagation on XOR: accuracy {100 * xor['mlp_accuracy']:.1f}%",
    ]
    return lines
