"""The ladder's pictures: the staircase figure (accuracy against training time) and its HTML page.

Both take ``teach.ladder.run_ladder``'s result as plain data. The page is self-contained like
``deepdive report``'s (the figure inlined as a data: URL, every text cell escaped).
"""
from __future__ import annotations

import html
import io
import json

from deepdive.viz import percent
from deepdive.viz.report import STYLE, html_table


def draw_staircase(result: dict) -> bytes:
    """Mean accuracy against mean training seconds (log axis) for every rung, error bars one std, with the
    reference points: a PNG's bytes."""
    from deepdive.viz.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 6))
    rungs = result["rungs"]
    xs = [max(r["train_seconds"]["mean"], 1e-3) for r in rungs]
    ys = [100 * r["mean"] for r in rungs]
    ax.plot(xs, ys, color="#888", linewidth=1, zorder=1)  # rung to rung, in order
    ax.errorbar(xs, ys, xerr=[r["train_seconds"]["std"] for r in rungs], yerr=[100 * r["std"] for r in rungs],
                fmt="o", color="#1f5fa8", ecolor="#9bb7d8", capsize=3, zorder=2, label="deepdive ladder rungs")
    for r, x, y in zip(rungs, xs, ys):
        ax.annotate(str(r["index"]), (x, y), textcoords="offset points", xytext=(6, -12), fontsize=9)
    colors = ("#b03a2e", "#1e8449", "#7d3c98", "#b9770e")
    for ref, color in zip(result["references"], colors):
        y = 100 * ref["test_accuracy"]
        ax.axhline(y, color=color, linestyle="--", linewidth=1)
        if ref.get("train_seconds"):
            ax.plot([ref["train_seconds"]], [y], marker="*", markersize=12, color=color, linestyle="none")
        ax.annotate(f"{ref['name']}: {y:.1f}%", (0.01, y), xycoords=("axes fraction", "data"),
                    textcoords="offset points", xytext=(0, 3), fontsize=8, color=color)
    ax.set_xscale("log")
    ax.set(xlabel="training seconds (log scale; mean over seeds)", ylabel="test accuracy (%)",
           title=f"From the article's experiment to the fast recipe, one change per rung (scale {result['scale']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _change_cell(r: dict) -> str:
    d = r.get("delta")
    if d is None:
        return "-"
    if d["interval"] is None:
        return f"{100 * d['mean']:+.2f} points"
    return f"{100 * d['mean']:+.2f} points [{100 * d['interval'][0]:+.2f}, {100 * d['interval'][1]:+.2f}]"


def page(result: dict, png: bytes) -> str:
    """The ladder's HTML page: what was run, the table, the staircase, every rung's reason, the references."""
    import base64

    rows = [[r["index"], r["title"], f"{percent(r['mean'])} ± {100 * r['std']:.2f}", _change_cell(r),
             (r.get("delta") or {}).get("verdict", "-"), f"{r['train_seconds']['mean']:.1f}",
             "-" if r["images_per_second"] is None else f"{r['images_per_second']:,.0f}",
             f"{r['training_flops_per_image'] / 1e6:,.1f}", f"{r['test_flops_per_image'] / 1e6:,.1f}"]
            for r in result["rungs"]]
    table = html_table(rows, ["rung", "change", "test accuracy (mean ± std)", "change from below (95% interval)",
                              "verdict", "training s", "images/s", "training MFLOP/image", "test MFLOP/image"])
    reasons = "".join(f"<li><b>{r['index']}. {html.escape(r['title'])}</b> "
                      f"(<code>{html.escape(json.dumps(r['change']))}</code>): {html.escape(r['reason'])}</li>"
                      for r in result["rungs"])
    refs = "".join(f"<li><b>{html.escape(ref['name'])}</b>: {percent(ref['test_accuracy'])}"
                   + (f" in {ref['train_seconds']:g} s" if ref.get("train_seconds") else "")
                   + f" - {html.escape(ref['source'])}</li>" for ref in result["references"])
    image = base64.b64encode(png).decode()
    seeds = ", ".join(map(str, result["seeds"]))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>deepdive: the ladder</title>"
            f"<style>{STYLE}</style></head><body><h1>From 61% to the record, one change at a time</h1>"
            f"<p class='headline'>Scale <b>{html.escape(result['scale'])}</b>: {html.escape(result['about'])}. "
            f"Seeds {html.escape(seeds)}.</p>{table}"
            "<p>Accuracy: mean ± sample standard deviation over the seeds; rung 0 is measured in train mode, as "
            "the article measured. A change is the mean of the per-seed differences from the rung below (the same "
            "seed trains both on the same subset); its 95% interval uses Student's t; a change whose interval "
            "holds zero is <i>within noise</i>. Training seconds are the runs' own stopwatch, evaluation "
            "excluded; FLOPs are counted by torch's FlopCounterMode (matrix products and convolutions).</p>"
            f'<h2>The staircase</h2><img alt="staircase" src="data:image/png;base64,{image}">'
            "<p>Reference lines are other runs' results: their times come from other data sizes, machines or "
            f"both, and mark where they are, not a race.</p><h2>Each rung's change and why</h2><ol start='0' "
            f"style='list-style:none;padding:0'>{reasons}</ol><h2>References</h2><ul>{refs}</ul></body></html>\n")
