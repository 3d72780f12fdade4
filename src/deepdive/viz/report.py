"""``deepdive report RUN``: one self-contained HTML page about a run (``RUN/report.html``).

The run's model is reloaded and measured on its test split again (as
``deepdive evaluate`` does), its figures are redrawn into ``RUN/figures/``, and
the page holds them as ``data:image/png;base64`` images - nothing is fetched,
the file can be mailed or opened offline - beside the resolved config, the
summary, the per-class table and, for the article's recipe, the article's
published losses and accuracy next to the run's.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from deepdive.viz import percent



def write_report(run_dir, device: str = "auto", svg: bool = False) -> dict:
    from deepdive.storage.atomic import write_bytes_atomic
    from deepdive.inference.evaluate import open_run_for_test
    from deepdive.training.evaluation import evaluate_split
    from deepdive.storage.runs import REPORT, SUMMARY
    from deepdive.training.threads import set_threads
    from deepdive.viz.run_figures import write_run_figures

    set_threads(None)
    run, cfg, info, engine, model, test = open_run_for_test(run_dir, device)
    loss, accuracy = evaluate_split(engine, model, test, tta=cfg.tta)
    drawn = write_run_figures(run, engine, model, test, info["classes"], cfg.tta, svg)
    summary = run.summary() if run.file(SUMMARY).exists() else {}
    page = _page(run, cfg.to_dict(), summary, run.metrics(), drawn, loss, accuracy, len(test))
    write_bytes_atomic(run.file(REPORT), page.encode())
    return {"report": str(run.file(REPORT)), "test_accuracy": accuracy, "test_loss": loss, "examples": len(test),
            "figures": drawn["figures"], "per_class": drawn["per_class"]}


def image_tag(path: str) -> str:
    """A PNG file as an <img> holding its bytes (the page needs nothing beside it)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


def html_table(rows: list[list], header: list[str]) -> str:
    """Rows as an HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _article_section(cfg: dict, metrics: list[dict], summary: dict) -> str:
    """For the article's recipe: its published per-epoch losses and accuracy beside the run's."""
    if cfg.get("recipe") != "article":
        return ""
    from deepdive.config.recipes import ARTICLE

    published = ARTICLE["published"]
    losses = published["train_losses"]
    rows = [[m["epoch"], f"{losses[m['epoch'] - 1]:.3f}" if m["epoch"] <= len(losses) else "-",
             f"{m['train_loss']:.3f}"] for m in metrics]
    return (f"<h2>Beside the article</h2>{html_table(rows, ['epoch', 'article loss', 'this run loss'])}"
            f"<p>Test accuracy: article {percent(published['test_accuracy'])} (measured in train mode, dropout "
            f"on); this run {percent(summary.get('test_accuracy'))} (eval mode), "
            f"{percent(summary.get('test_accuracy_train_mode'))} (train mode).</p>")


STYLE = ("body{font-family:sans-serif;max-width:1040px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
         "img{max-width:100%;display:block;margin:1em 0}.headline{font-size:1.4em}")


def _page(run, cfg: dict, summary: dict, metrics: list[dict], drawn: dict, loss: float, accuracy: float,
          examples: int) -> str:
    figures = "".join(f"<h3>{html.escape(name.replace('_', ' '))}</h3>{image_tag(path)}"
                      for name, path in drawn["figures"].items())
    per_class = [[r["class"], r["images"], r["correct"], percent(r["accuracy"])] for r in drawn["per_class"]]
    config_rows = [[k, json.dumps(v)] for k, v in cfg.items()]
    summary_rows = [[k, json.dumps(v)] for k, v in summary.items()]
    title = f"{cfg.get('model')} on {cfg.get('dataset')}"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>deepdive: {html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f"<p class='headline'>test accuracy <b id='accuracy'>{100 * accuracy:.2f}%</b>, test loss "
            f"<b id='loss'>{loss:.4f}</b> on {examples} test images, after {summary.get('epochs', '?')} epoch(s)</p>"
            f"<p>Run folder: <code>{html.escape(str(run.path))}</code>; status {html.escape(str(summary.get('status')))}"
            f"</p>{_article_section(cfg, metrics, summary)}<h2>Figures</h2>{figures}"
            f"<h2>Per-class accuracy</h2>{html_table(per_class, ['class', 'images', 'correct', 'accuracy'])}"
            f"<h2>Configuration</h2>{html_table(config_rows, ['key', 'value'])}"
            f"<h2>Summary</h2>{html_table(summary_rows, ['key', 'value'])}</body></html>\n")
