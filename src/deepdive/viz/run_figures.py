"""A run's pictures: curves, confusion matrix, per-class accuracy, the most confident mistakes.

Written into ``RUN/figures/`` when a run completes and again by ``deepdive
report``; PNG always (readable at 800 px wide), SVG too with ``--svg``. The
numbers behind them (predictions on the test split, the confusion matrix) are
computed by ``training.evaluation.predictions_on`` with the weights the run reports and its
test-time augmentation, so the pictures agree with ``deepdive evaluate``.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from deepdive.storage.atomic import write_bytes_atomic
from deepdive.viz.figures import plain

FIGURES = "figures"
WIDTH_IN, DPI = 10.0, 100  # 1000 px wide


def _save(fig, folder: Path, name: str, svg: bool) -> Path:
    """PNG (and SVG) written atomically; returns the PNG's path."""
    for fmt in ("png", "svg") if svg else ("png",):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=DPI)
        write_bytes_atomic(folder / f"{name}.{fmt}", buffer.getvalue())
    return folder / f"{name}.png"


def curves(records: list[dict], folder: Path, svg: bool = False) -> Path:
    """Train/test (and validation) loss and test accuracy per epoch; the learning rate on a second axis."""
    from deepdive.viz.figures import pyplot

    plt = pyplot()
    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(WIDTH_IN, WIDTH_IN * 0.4))
    colors = {"train": "tab:blue", "test": "tab:orange", "validation": "tab:green", "test, train mode": "tab:red"}
    for key, label in (("train_loss", "train"), ("test_loss", "test"), ("val_loss", "validation")):
        points = [(e, r[key]) for e, r in zip(epochs, records) if r.get(key) is not None]
        if points:
            ax_loss.plot(*zip(*points), marker="o", markersize=3, label=label, color=colors[label])
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (cross-entropy)")
    ax_loss.legend()
    for key, label in (("test_accuracy", "test"), ("val_accuracy", "validation"),
                       ("test_accuracy_train_mode", "test, train mode")):
        points = [(e, 100 * r[key]) for e, r in zip(epochs, records) if r.get(key) is not None]
        if points:
            ax_acc.plot(*zip(*points), marker="o", markersize=3, label=label, color=colors[label])
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    low, high = ax_acc.get_ylim()
    ax_acc.set_ylim(low, min(high, 100.5))
    lrs = [(e, r["lr"]) for e, r in zip(epochs, records) if r.get("lr") is not None]
    if lrs and len({v for _, v in lrs}) > 1:  # a constant lr would only draw a flat line on a made-up scale
        ax_lr = ax_acc.twinx()
        ax_lr.plot(*zip(*lrs), color="grey", linestyle="--", linewidth=1, label="learning rate")
        ax_lr.set_ylabel("learning rate", color="grey")
        ax_lr.legend(loc="lower right", fontsize=8)
    ax_acc.legend(loc="upper left", fontsize=8)
    from matplotlib.ticker import MaxNLocator
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) == 1:
            ax.set_xticks(epochs)
    if lrs and len({v for _, v in lrs}) == 1:
        ax_acc.set_title(f"learning rate {lrs[0][1]:g} throughout", fontsize=9)
    fig.tight_layout()
    path = _save(fig, folder, "curves", svg)
    plt.close(fig)
    return path


def confusion(matrix: np.ndarray, classes: list[str], folder: Path, svg: bool = False) -> Path:
    """Rows: true class; columns: predicted; each cell's count written in it."""
    from deepdive.viz.figures import pyplot

    plt = pyplot()
    k = len(classes)
    side = min(max(8.0, 0.5 * k + 2), 16.0)  # at least 800 px wide
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(k), [plain(c) for c in classes], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), [plain(c) for c in classes], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix: {int(np.trace(matrix))} of {int(matrix.sum())} correct")
    if k <= 30:
        top = matrix.max() or 1
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > top / 2 else "black")
    fig.tight_layout()
    path = _save(fig, folder, "confusion", svg)
    plt.close(fig)
    return path


def per_class(rows: list[dict], folder: Path, svg: bool = False) -> Path:
    from deepdive.viz.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(WIDTH_IN, 0.25 * len(rows)), WIDTH_IN * 0.4 + (1.5 if len(rows) > 8 else 0)))
    names = [plain(r["class"]) for r in rows]
    values = [None if r["accuracy"] is None else 100 * r["accuracy"] for r in rows]
    ax.bar(range(len(rows)), [v or 0.0 for v in values], color="steelblue")
    many = len(rows) > 8
    ax.set_xticks(range(len(rows)), names, rotation=60 if many else 0, ha="right" if many else "center",
                  fontsize=8 if len(rows) <= 30 else 6)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("per-class test accuracy")
    if len(rows) <= 30:  # more labels than that only smear
        for i, v in enumerate(values):
            ax.text(i, (v or 0.0) + 1, "n/a" if v is None else f"{v:.1f}", ha="center", fontsize=8)
    fig.tight_layout()
    path = _save(fig, folder, "per_class", svg)
    plt.close(fig)
    return path


def mistakes(images: np.ndarray, truths: np.ndarray, preds: np.ndarray, confidences: np.ndarray,
             classes: list[str], folder: Path, svg: bool = False, count: int = 24) -> Path | None:
    """The test images the model got wrong, most confident first, each titled "predicted (p%) / true"."""
    from deepdive.viz.figures import pyplot

    wrong = np.flatnonzero(preds != truths)
    if wrong.size == 0:
        return None
    wrong = wrong[np.argsort(-confidences[wrong], kind="stable")][:count]
    plt = pyplot()
    columns = 8
    rows = (len(wrong) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(WIDTH_IN, 1.45 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        image = images[i].transpose(1, 2, 0)
        ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray" if image.shape[2] == 1 else None)
        ax.set_title(plain(f"{classes[preds[i]]} ({100 * confidences[i]:.0f}%)\ntrue: {classes[truths[i]]}"),
                     fontsize=7)
    fig.suptitle("most confident mistakes (predicted, confidence / true class)", fontsize=9)
    fig.tight_layout()
    path = _save(fig, folder, "mistakes", svg)
    plt.close(fig)
    return path


def write_run_figures(run, engine, model, test, classes: list[str], tta: str, svg: bool = False) -> dict:
    """Every figure of a run into RUN/figures/; returns the per-class table and the figures' paths."""
    from deepdive.inference.evaluate import confusion_matrix, per_class_table
    from deepdive.training.evaluation import predictions_on

    folder = run.subfolder(FIGURES)
    preds, confidences, truths = predictions_on(engine, model, test, tta)
    matrix = confusion_matrix(truths, preds, len(classes))
    table = per_class_table(matrix, classes)
    paths = {"curves": curves(run.metrics(), folder, svg), "confusion": confusion(matrix, classes, folder, svg),
             "per_class": per_class(table, folder, svg)}
    if hasattr(test, "images"):  # a streamed split keeps its images on disk: no mistakes grid
        grid = mistakes(test.images.cpu().numpy(), truths, preds, confidences, classes, folder, svg)
        if grid:
            paths["mistakes"] = grid
    return {"per_class": table, "confusion": matrix.tolist(), "figures": {k: str(v) for k, v in paths.items()}}


def when_complete(run, engine, model, test, classes: list[str], tta: str, svg: bool = False) -> dict:
    """The drawer the commands and ``deepdive.train`` hand to the loop (``run_training(figures=...)``): a run's
    figures when it completes. The loop imports nothing of ``viz``; the floors above choose what it draws."""
    return write_run_figures(run, engine, model, test, classes, tta, svg)
