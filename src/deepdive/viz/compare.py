"""``deepdive compare RUN...``: runs side by side - a table on the terminal, overlaid curves in
``compare.png`` and both in a self-contained ``compare.html`` (written into ``--out``, default here).

Everything comes from the run folders' own files (config.json, summary.json,
metrics.jsonl): nothing is re-run or re-evaluated.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from deepdive.config.specs import ENGINE_SPECS
from deepdive.viz import percent

COLUMNS = ("run", "dataset", "model", "optimizer", "lr", "batch", "epochs", "best accuracy", "final accuracy",
           "train time", "status")


def collect(run_dirs: list[str]) -> tuple[list[dict], list[list[dict]]]:
    """One row per run (the table's values) and its per-epoch records."""
    from deepdive.storage.runs import SUMMARY, RunDir

    from deepdive.errors import UserError

    resolved = [Path(p).resolve() for p in run_dirs]
    twice = sorted({str(p) for p in resolved if resolved.count(p) > 1})
    if twice:
        raise UserError(f"{twice[0]} is given more than once: give each run once")
    rows, histories = [], []
    names = _short_names(run_dirs)
    for name, path in zip(names, run_dirs):
        folder = RunDir.open(path)
        cfg = folder.config()
        summary = folder.summary() if folder.file(SUMMARY).exists() else {}
        records = folder.metrics()
        accuracies = [r["test_accuracy"] for r in records if r.get("test_accuracy") is not None]
        rows.append({"run": name, "path": str(folder.path), "dataset": cfg.dataset, "engine": cfg.engine,
                     "model": cfg.model, "optimizer": cfg.optimizer,
                     "lr": cfg.lr, "batch": cfg.batch_size, "epochs": len(records),
                     "best_accuracy": max(accuracies) if accuracies else None,
                     "final_accuracy": accuracies[-1] if accuracies else None,
                     "train_seconds": summary.get("train_seconds"), "status": summary.get("status")})
        histories.append(records)
    return rows, histories


def _short_names(paths: list[str]) -> list[str]:
    """Folder names, made unique with their parent's name when two runs share one."""
    resolved = [Path(p).resolve() for p in paths]
    names = [p.name for p in resolved]
    return [f"{p.parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(resolved, names)]


def _cells(row: dict) -> list[str]:
    seconds = row["train_seconds"]
    engine = ENGINE_SPECS.get(row["engine"])
    model = row["model"] + (engine.note if engine else "")
    return [row["run"], row["dataset"], model, row["optimizer"], f"{row['lr']:g}", str(row["batch"]),
            str(row["epochs"]), percent(row["best_accuracy"]), percent(row["final_accuracy"]),
            "-" if seconds is None else f"{seconds:.1f} s", str(row["status"] or "-")]


def table_lines(rows: list[dict]) -> list[str]:
    cells = [list(COLUMNS)] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return ["  ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip() for c in cells]


def draw(rows: list[dict], histories: list[list[dict]]) -> bytes:
    """Test accuracy and training loss per epoch, one line per run: a PNG's bytes."""
    from deepdive.viz.figures import plain, pyplot

    plt = pyplot()
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for row, records in zip(rows, histories):
        acc = [(r["epoch"], 100 * r["test_accuracy"]) for r in records if r.get("test_accuracy") is not None]
        loss = [(r["epoch"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
        if acc:
            ax_acc.plot(*zip(*acc), marker="o", markersize=3, label=plain(row["run"]))
        if loss:
            ax_loss.plot(*zip(*loss), marker="o", markersize=3, label=plain(row["run"]))
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    for ax in (ax_acc, ax_loss):
        ax.legend(fontsize=7)
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def page(rows: list[dict], png: bytes) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>" for r in rows)
    image = base64.b64encode(png).decode()
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>deepdive: compare</title>"
            "<style>body{font-family:sans-serif;max-width:1040px;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}</style></head><body>"
            f"<h1>{len(rows)} runs compared</h1><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f'<img alt="curves" src="data:image/png;base64,{image}"></body></html>\n')
