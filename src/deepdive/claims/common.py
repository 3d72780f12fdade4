"""What several claims' experiments share: seeding the scratch engine, a tiny trainer, figures."""
from __future__ import annotations

import numpy as np


def seeded(seed: int) -> np.random.Generator:
    """The experiment's generator; the scratch engine's initialisation draws from NumPy's global one, so that
    one is seeded too (as ``deepdive.teach.rosenblatt`` does)."""
    np.random.seed(seed)
    return np.random.default_rng(seed)


def fit_classifier(model, x: np.ndarray, labels: np.ndarray, steps: int, lr: float) -> list[float]:
    """Full-batch Adam on cross-entropy (the scratch engine, float64); the loss at every step."""
    import deepdive.scratch as scratch
    import deepdive.scratch.nn as nn
    import deepdive.scratch.optim as optim

    opt = optim.Adam(model.parameters(), lr=lr)
    inputs, losses = scratch.Tensor(x.astype(np.float64)), []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def predict(model, x: np.ndarray) -> np.ndarray:
    """The model's outputs on ``x`` without recording a graph."""
    import deepdive.scratch as scratch

    with scratch.no_grad():
        return model(scratch.Tensor(np.asarray(x, dtype=np.float64))).data


def save_figure(fig, out) -> None:
    """Write the figure as a PNG, atomically, and free it."""
    from deepdive.storage.atomic import write_atomic
    from deepdive.viz.figures import pyplot

    fig.tight_layout()
    write_atomic(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    pyplot().close(fig)


def figure(panels: int, height: float = 4.0):
    """A row of ``panels`` axes, about 1200 px wide in all."""
    from deepdive.viz.figures import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, panels, figsize=(min(12.0, 4.2 * panels), height))
    return fig, np.atleast_1d(axes)


def decision_regions(ax, predict_fn, box=(-0.5, 1.5), n: int = 200) -> None:
    """Shade where ``predict_fn`` (points -> +1/-1) says +1 and where −1."""
    lo, hi = box
    xs, ys = np.meshgrid(np.linspace(lo, hi, n), np.linspace(lo, hi, n))
    z = predict_fn(np.stack([xs.ravel(), ys.ravel()], 1)).reshape(n, n)
    ax.contourf(xs, ys, z, levels=[-2, 0, 2], colors=["#f4c7c3", "#c6dafc"], alpha=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
