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
                  seed: int = 0):
    """A 2 -> hidden -> 2 MLP (ReLU) trained by backprop with Adam on the scratch engine; returns its
    accuracy on (x, y) and a function giving the predicted label (+1/-1) of any points."""
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

    def predict(points: np.ndarray) -> np.ndarray:
        with scratch.no_grad():
            return np.where(model(scratch.Tensor(points.astype(np.float64))).data.argmax(axis=1) == 1, 1, -1)
    return float((predict(x) == y).mean()), predict


def fit_all(max_epochs: int = 100, seed: int = 0) -> dict:
    """The data, the fitted perceptrons and the MLP's predictor: what ``run`` reports and ``--plot`` draws."""
    from deepdive.scratch.perceptron import Rosenblatt

    fitted = {}
    for name, (x, y) in (("separable", separable_blobs(seed=seed)), ("xor", xor_points(seed=seed))):
        fitted[name] = {"x": x, "y": y, "perceptron": Rosenblatt(2).fit(x, y, max_epochs=max_epochs, seed=seed)}
    x, y = fitted["xor"]["x"], fitted["xor"]["y"]
    fitted["xor"]["mlp_accuracy"], fitted["xor"]["mlp"] = train_mlp_xor(x, y, seed=seed)
    return fitted


def run(max_epochs: int = 100, seed: int = 0, fitted: dict | None = None) -> dict:
    fitted = fitted or fit_all(max_epochs, seed)
    results = {}
    for name, f in fitted.items():
        p = f["perceptron"]
        results[name] = {"perceptron_converged": p.converged, "perceptron_epochs": p.epochs_run,
                         "perceptron_accuracy": p.accuracy(f["x"], f["y"])}
    results["xor"]["mlp_accuracy"] = fitted["xor"]["mlp_accuracy"]
    return results


def plot(fitted: dict, out) -> None:
    """Three panels: the perceptron's line on separable data, its line failing on XOR, the MLP's regions."""
    from deepdive.storage.atomic import write_atomic
    from deepdive.viz.figures import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 300), np.linspace(-3, 3, 300)), -1).reshape(-1, 2)
    panels = [("separable", "perceptron", "perceptron on separable data"), ("xor", "perceptron", "perceptron on XOR"),
              ("xor", "mlp", "2-8-2 MLP (ReLU) on XOR")]
    for ax, (data, model, title) in zip(axes, panels):
        f = fitted[data]
        predict = f["mlp"] if model == "mlp" else f["perceptron"].predict
        accuracy = float((predict(f["x"]) == f["y"]).mean())
        ax.contourf(grid[:, 0].reshape(300, 300), grid[:, 1].reshape(300, 300), predict(grid).reshape(300, 300),
                    levels=[-2, 0, 2], colors=["#f4c7c3", "#c6dafc"], alpha=0.8)
        if model == "perceptron" and np.any(f["perceptron"].w):
            w, b = f["perceptron"].w, f["perceptron"].b
            xs = np.linspace(-3, 3, 2)
            if abs(w[1]) > 1e-12:
                ax.plot(xs, -(w[0] * xs + b) / w[1], color="black", linewidth=1.5, label="wᵀx + b = 0")
                ax.legend(loc="lower left", fontsize=8)
        for label, color in ((1, "tab:blue"), (-1, "tab:red")):
            pts = f["x"][f["y"] == label]
            ax.scatter(pts[:, 0], pts[:, 1], s=12, color=color, label=None)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_title(f"{title}: {100 * accuracy:.0f}%", fontsize=10)
    fig.tight_layout()
    write_atomic(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def format_results(results: dict, max_epochs: int) -> list[str]:
    sep, xor = results["separable"], results["xor"]
    lines = [
        f"Rosenblatt's perceptron (w += y·x on each mistake), at most {max_epochs} epochs:",
        f"  linearly separable data: {'converged' if sep['perceptron_converged'] else 'did NOT converge'} after "
        f"{sep['perceptron_epochs']} epoch(s), accuracy {100 * sep['perceptron_accuracy']:.1f}%",
        f"  XOR: {'converged' if xor['perceptron_converged'] else 'did not converge'} after "
        f"{xor['perceptron_epochs']} epochs, accuracy {100 * xor['perceptron_accuracy']:.1f}% "
        "(no straight line separates XOR: one gets at most three of its four corner clusters right, 75%; "
        "`deepdive claims perceptron-xor` uses the four corner points alone, so its figure is the last weights' "
        "share of four points, e.g. 50%)",
        f"2-layer MLP (2 -> 8 -> 2, ReLU) trained by backpropagation on XOR: accuracy {100 * xor['mlp_accuracy']:.1f}%",
    ]
    return lines
