"""``deepdive ladder``: every rung of ``config.ladder`` trained over seeds, measured, and compared with the one below.

Each (rung, seed) is an ordinary run folder, ``OUT/ladder-N/seed-S``, trained by the same code as
``deepdive train --recipe ladder-N --seed S`` with the scale's subset and epochs. A ladder that stops
(Ctrl-C, a crash, a closed laptop) continues where it stopped when started again with the same
``--out``: a finished run is read, not trained again; a run with a checkpoint resumes from it
(``training.resume``); only a run that never reached a checkpoint starts over.

What is measured for each rung: the figure it is judged by (``Rung.reads``) as mean ± sample standard
deviation over the seeds, training seconds and images per second (the runs' own stopwatch, evaluation
excluded), and FLOPs per image counted on the model (``models.flops``). The change from the rung below
is the mean of the per-seed differences - the same seed trains both rungs on the same subset, so the
pairing removes the subset's share of the spread - with a 95% interval from Student's t over the
seeds; a change whose interval holds zero is "within noise".
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from deepdive.config.ladder import REFERENCES, RUNGS, SCALE_KEYS, SCALES, rung_name, rung_values
from deepdive.errors import UserError
from deepdive.teach.article_seeds import mean_std

log = logging.getLogger("deepdive")

# Two-sided 95% quantiles of Student's t for 1..10 degrees of freedom; 1.96 (normal) beyond 30.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       15: 2.131, 20: 2.086, 30: 2.042}


def t95(df: int) -> float:
    """The 95% two-sided t quantile for ``df`` degrees of freedom (the nearest tabulated df at or below it)."""
    if df > 30:
        return 1.96
    return T95[max(k for k in T95 if k <= df)]


def rung_indices(text: str | None) -> list[int]:
    """``--rungs`` "0-4" / "2,5" (default all) -> indices; a rung that shares its runs brings the one below."""
    if text is None:
        return list(range(len(RUNGS)))
    from deepdive.teach.article_seeds import parse_seeds

    try:
        chosen = parse_seeds(text, "--rungs", upper=len(RUNGS))
    except UserError:
        raise UserError(f"--rungs {text!r} is invalid: give rungs 0 to {len(RUNGS) - 1}, e.g. 0-4 or 2,5") from None
    return sorted(set(chosen) | {i - 1 for i in chosen if RUNGS[i].same_runs_as_below})


def run_flags(index: int, seed: int, scale: str, data_dir: str, device: str, threads: int | None = None) -> dict:
    """What ``deepdive train`` is given for one (rung, seed): the rung's recipe, the scale, no per-run figures,
    and the ladder's thread count (``threads``: chosen once, see ``run_ladder``)."""
    flags = {"recipe": rung_name(index), "seed": seed, "data_dir": data_dir, "device": device,
             "eval_each_epoch": False, "figures": False}
    if threads is not None:
        flags["threads"] = threads
    flags.update({k: SCALES[scale][k] for k in SCALE_KEYS if SCALES[scale][k] is not None})
    return flags


def train_one(flags: dict, folder: Path, overwrite: bool = False, make_hooks=None) -> tuple[dict, bool]:
    """One run, or the one already there: (its summary, whether anything was trained now)."""
    from deepdive.config.resolve import resolve_config
    from deepdive.storage.runs import CONFIG
    from deepdive.training.resume import open_resume, resume_run
    from deepdive.training.setup import run_training

    if not overwrite and (folder / CONFIG).is_file():
        run, cfg, differences = open_resume(str(folder), flags)
        summary = resume_run(run, cfg, differences, make_hooks=make_hooks)
        return summary, not summary.get("already_completed", False)
    cfg = resolve_config({**flags, "out": str(folder)})
    return run_training(cfg, overwrite=overwrite, make_hooks=make_hooks), True


def flops_of(index: int, input_shape=(3, 32, 32), classes: int = 10) -> dict:
    """Counted FLOPs per image of rung ``index``'s model: a training step, and a test image with its views."""
    import torch

    from deepdive.config.names import TTA_VIEWS
    from deepdive.models.flops import forward_flops_per_image, training_flops_per_image
    from deepdive.models.registry import build_model, model_options

    values = rung_values(index)[0]
    model = build_model(values["model"], torch.nn, torch.nn.functional, input_shape, classes,
                        **model_options(values["model"], values))
    views = TTA_VIEWS[values.get("tta", "none")]
    return {"training_flops_per_image": training_flops_per_image(model, input_shape, classes),
            "test_flops_per_image": views * forward_flops_per_image(model, input_shape), "test_views": views}


def change_from_below(values: list[float], below: list[float]) -> dict:
    """The paired change (same seeds) of a rung's figure from the rung below's, its 95% interval, a verdict."""
    diffs = [a - b for a, b in zip(values, below)]
    mean, std = mean_std(diffs)
    n = len(diffs)
    if n < 2:
        return {"mean": mean, "se": None, "interval": None, "verdict": "one seed: no spread to judge by"}
    se = std / math.sqrt(n)
    half = t95(n - 1) * se
    if half == 0:
        verdict = "no change" if mean == 0 else ("gain" if mean > 0 else "loss")
    elif mean - half > 0:
        verdict = "gain"
    elif mean + half < 0:
        verdict = "loss"
    else:
        verdict = "within noise"
    return {"mean": mean, "se": se, "interval": [mean - half, mean + half], "verdict": verdict}


def summarize_rung(index: int, summaries: list[dict]) -> dict:
    """One rung's figures over its seeds' summaries."""
    rung = RUNGS[index]
    figures = [s[rung.reads] for s in summaries]
    mean, std = mean_std(figures)
    seconds = mean_std([s["train_seconds"] for s in summaries])
    rates = [s["images_per_second"] for s in summaries if s.get("images_per_second")]
    return {"index": index, "name": rung_name(index), "title": rung.title, "change": dict(rung.change),
            "reason": rung.reason, "reads": rung.reads, "same_runs_as_below": rung.same_runs_as_below,
            "seeds": [s["seed"] for s in summaries], "runs": [s["run"] for s in summaries], "values": figures,
            "mean": mean, "std": std, "train_seconds": {"mean": seconds[0], "std": seconds[1]},
            "images_per_second": sum(rates) / len(rates) if rates else None,
            "eval_seconds": sum(s.get("eval_seconds") or 0.0 for s in summaries) / len(summaries),
            "device": summaries[0].get("device"), "amp": bool(summaries[0].get("amp"))}


def run_ladder(scale: str, seeds: list[int], out: Path, data_dir: str = "./data", device: str = "auto",
               rungs: list[int] | None = None, overwrite: bool = False, make_hooks=None, progress=None) -> dict:
    """Train (or read) every (rung, seed), then the figures of every rung and its change from the one below."""
    if scale not in SCALES:
        raise UserError(f"--scale {scale!r} is invalid: give one of {', '.join(SCALES)}")
    indices = rung_indices(None) if rungs is None else rungs
    out.mkdir(parents=True, exist_ok=True)
    # One thread count for every run, chosen before the first: measured between two runs of one process, the
    # machine looks busy (the last run's OpenMP workers still spin) and a run would get one thread of two -
    # measured: twice the seconds and other numerics for that run alone.
    from deepdive.training.threads import default_threads
    threads = default_threads(None)
    trained: list[str] = []
    by_rung: dict[int, list[dict]] = {}
    for i in indices:
        home = i - 1 if RUNGS[i].same_runs_as_below else i
        if home in by_rung:
            by_rung[i] = by_rung[home]
            continue
        by_rung[i] = []
        for seed in seeds:
            folder = out / rung_name(home) / f"seed-{seed}"
            if progress:
                progress(f"{rung_name(i)} ({RUNGS[i].title}), seed {seed}: {folder}")
            summary, now = train_one(run_flags(home, seed, scale, data_dir, device, threads), folder, overwrite,
                                     make_hooks)
            summary = {**summary, "seed": seed, "run": str(folder)}
            if now:
                trained.append(str(folder))
            by_rung[i].append(summary)
    rows = [{**summarize_rung(i, by_rung[i]), **flops_of(i)} for i in indices]
    for row, below in zip(rows[1:], rows[:-1]):
        if below["index"] == row["index"] - 1:
            row["delta"] = change_from_below(row["values"], below["values"])
    return {"scale": scale, "about": SCALES[scale]["about"], "seeds": list(seeds),
            **{k: SCALES[scale][k] for k in SCALE_KEYS}, "rungs": rows, "references": [dict(r) for r in REFERENCES],
            "trained_now": trained}


def table_lines(result: dict) -> list[str]:
    """The ladder as a terminal table."""
    header = ["rung", "change", "accuracy", "change from below (95%)", "verdict", "train s", "img/s", "MFLOP/img"]
    cells = [header]
    for r in result["rungs"]:
        d = r.get("delta")
        change = "-" if d is None else (f"{100 * d['mean']:+.2f}" + ("" if d["interval"] is None else
                                        f" [{100 * d['interval'][0]:+.2f}, {100 * d['interval'][1]:+.2f}]"))
        rate = r["images_per_second"]
        cells.append([str(r["index"]), r["title"], f"{100 * r['mean']:.2f}% ± {100 * r['std']:.2f}", change,
                      "-" if d is None else d["verdict"], f"{r['train_seconds']['mean']:.1f}",
                      "-" if rate is None else f"{rate:,.0f}", f"{r['training_flops_per_image'] / 1e6:,.1f}"])
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(header))).rstrip() for c in cells]
    lines.append(f"scale {result['scale']}: {result['about']}; seeds {', '.join(map(str, result['seeds']))}; "
                 "accuracy = mean ± sample std over the seeds (rung 0 in train mode, as the article measured); "
                 "changes are paired by seed")
    return lines
