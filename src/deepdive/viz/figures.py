"""Drawing with matplotlib (imported here only, when a figure is asked for; the Agg backend: no display).

Every figure is written atomically: a crash leaves no half-written image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deepdive.storage.atomic import write_atomic

WIDTH_PX, DPI = 1200, 100  # readable at 800 px wide


def pyplot():
    """matplotlib's pyplot, drawing off-screen; matplotlib's own warnings (a glyph the font lacks, ...) do not
    reach the user's terminal. Text from the data goes through ``plain`` first."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    warnings.filterwarnings("ignore", category=UserWarning, module="matplotlib")
    import matplotlib.pyplot as plt
    return plt


def plain(text: str) -> str:
    """Text from the data (class and run names) as matplotlib must draw it: literally. Between two dollar signs
    matplotlib reads a formula ("$100_$200" is a parse error that loses the figure); an escaped one is a dollar.
    (Turning mathtext off altogether would also break the log axes' tick labels, which are formulas.)"""
    return str(text).replace("$", r"\$")


def draw_contours(ax, s) -> None:
    """Log-spaced contour levels of f − f_min: a narrow valley shows as nested ellipses."""
    (x0, x1), (y0, y1) = s.box
    xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    f_min = s.f(np.array(s.minimum))
    zs = s.f(np.stack([xs, ys])) - f_min
    positive = zs[zs > 0]
    levels = np.geomspace(max(positive.min(), 1e-4), positive.max(), 18) if positive.size else 18
    ax.contour(xs, ys, zs, levels=levels, cmap="Greys", linewidths=0.6)
    ax.plot(*s.minimum, marker="*", color="black", markersize=12, linestyle="none")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def draw_paths(s, paths, out: str | Path, title: str, tol: float, animate: bool = False) -> Path:
    """Paths over the surface's contours (left) and f − f_min per step, log scale (right): a PNG, or with
    ``animate`` a GIF in which the paths grow step by step."""
    import warnings

    with warnings.catch_warnings():  # a diverged path (inf, nan) makes matplotlib warn; the table says it
        warnings.simplefilter("ignore")
        return _draw_paths(s, paths, out, title, tol, animate)


def _draw_paths(s, paths, out, title: str, tol: float, animate: bool) -> Path:
    plt = pyplot()
    out = Path(out)
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(WIDTH_PX / DPI, WIDTH_PX / DPI * 0.45), dpi=DPI)
    draw_contours(ax, s)
    ax.set_title(title)
    lines, marks, curves = [], [], []
    for i, p in enumerate(paths):
        color = plt.cm.tab10(i % 10)
        label = f"{p.optimizer} (η={p.lr:g})"
        lines.append(ax.plot(*p.points.T, color=color, linewidth=1.2, label=label)[0])
        marks.append(ax.plot(*p.points[-1], "o", color=color, markersize=4)[0])
        losses = np.clip(np.nan_to_num(p.losses, nan=1e300, posinf=1e300), 1e-16, 1e300)
        curves.append(ax_loss.plot(np.arange(len(losses)), losses, color=color, label=label)[0])
    ax_loss.axhline(tol, color="black", linestyle=":", linewidth=1, label=f"tolerance {tol:g}")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("f(θ) − f_min")
    ax_loss.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    if not animate:
        write_atomic(out, lambda tmp: fig.savefig(tmp, format="png"))
    else:
        _animate(fig, paths, lines, marks, curves, out)
    plt.close(fig)
    return out


def _animate(fig, paths, lines, marks, curves, out: Path, frames: int = 60) -> None:
    """Redraw the figure ``frames`` times with the paths cut at a growing step; frames become a GIF."""
    import io

    from PIL import Image

    from deepdive.storage.atomic import write_bytes_atomic

    longest = max(len(p.points) for p in paths)
    frames = min(frames, longest)  # one frame per step on short paths
    images = []
    for frame in range(frames):
        upto = 1 + round(frame * (longest - 1) / max(frames - 1, 1))
        for p, line, mark, curve in zip(paths, lines, marks, curves):
            n = min(upto, len(p.points))
            line.set_data(*p.points[:n].T)
            mark.set_data([p.points[n - 1, 0]], [p.points[n - 1, 1]])
            curve.set_data(np.arange(n), np.maximum(p.losses[:n], 1e-16))
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("P", palette=Image.ADAPTIVE))
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    write_bytes_atomic(out, buffer.getvalue())
