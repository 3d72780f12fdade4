"""``deepdive reproduce article --seeds 0-9``: the article's result as a distribution over seeds.

The article publishes one run: 61.2% test accuracy (measured in train mode, dropout on). A single
run of the same recipe lands a point or two away from it, which says nothing until the run-to-run
spread is known. This runs the article's recipe once per seed - each a normal run folder,
``OUT/seed-N`` - and reports the mean and standard deviation (sample, n - 1) of the eval-mode and
train-mode test accuracies and of each epoch's training loss, and where the published 61.2% falls:
how many standard deviations from the mean, and how many of the seeds' train-mode runs reached it.

``--jobs J`` runs J seeds at once as separate ``deepdive train`` processes (the model is tiny: on one
GPU several runs share it); with one job the seeds run one after another in this process.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deepdive.errors import RunFailed, UserError

MAX_SEEDS = 1000
SEED_LIMIT = 2 ** 63  # TrainConfig's seed range (config/validation.py)
_PART = re.compile(r"(\d+)(?:-(\d+))?", re.ASCII)


def parse_seeds(text: str, flag: str = "--seeds", cap: int = MAX_SEEDS, upper: int = SEED_LIMIT) -> list[int]:
    """"0-9" or "0,3,7" (or a mix, "0-4,9") -> the numbers, each once, in order; each part is checked against
    ``upper`` and the running count against ``cap`` before its range is built (``0-1000000000`` is refused, not
    expanded)."""
    chosen: set[int] = set()
    for part in text.split(","):
        match = _PART.fullmatch(part.strip())
        if match is None:
            raise UserError(f"{flag} {text!r} is invalid: give a range or a list of whole numbers >= 0, e.g. 0-9 or "
                            "0,3,7")
        lo = int(match.group(1)) if len(match.group(1)) <= 20 else upper
        hi = lo if match.group(2) is None else (int(match.group(2)) if len(match.group(2)) <= 20 else upper)
        if hi < lo:
            raise UserError(f"{flag} {text!r} is invalid: {part.strip()} runs backwards; give LOW-HIGH, e.g. 0-9")
        if hi >= upper:
            raise UserError(f"{flag} {text!r} is out of range: give whole numbers below {upper}")
        chosen.update(range(lo, min(hi, lo + cap) + 1))  # at most cap + 1 new numbers: enough to see the cap passed
        if len(chosen) > cap:
            raise UserError(f"{flag} {text} names more than {cap}: give fewer")
    return sorted(chosen)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0


def run_seeds(flags: dict, seeds: list[int], out: Path, jobs: int, overwrite: bool) -> list[dict]:
    """One article-recipe run per seed in OUT/seed-N; their summaries (with each epoch's losses added)."""
    if jobs < 1:
        raise UserError(f"--jobs {jobs} is invalid: give 1 or more")
    out.mkdir(parents=True, exist_ok=True)

    def one(seed: int) -> dict:
        folder = out / f"seed-{seed}"
        if jobs == 1:
            from deepdive.config.resolve import resolve_config
            from deepdive.training.setup import run_training
            from deepdive.viz.run_figures import when_complete
            summary = run_training(resolve_config({**flags, "seed": seed, "out": str(folder)}), overwrite=overwrite,
                                   figures=when_complete)
        else:
            summary = _in_a_process(flags, seed, folder, overwrite)
        from deepdive.storage.runs import RunDir
        summary["train_losses"] = [m["train_loss"] for m in RunDir(folder).metrics()]
        summary["seed"] = seed
        return summary

    if jobs == 1:
        return [one(s) for s in seeds]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, seeds))


def _in_a_process(flags: dict, seed: int, folder: Path, overwrite: bool) -> dict:
    argv = [sys.executable, "-m", "deepdive", "-q", "train", "--json", "--seed", str(seed), "--out", str(folder)]
    for key, value in flags.items():
        if key == "download":
            argv += [] if value else ["--no-download"]
        elif value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    if overwrite:
        argv.append("--overwrite")
    done = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise (UserError if done.returncode == 2 else RunFailed)(f"seed {seed}: {last}")
    return json.loads(done.stdout)


def distribution(summaries: list[dict], published: dict) -> dict:
    """Mean ± std of both accuracies and of each epoch's loss, and where the published figure falls."""
    eval_mode = [s["test_accuracy"] for s in summaries]
    train_mode = [s["test_accuracy_train_mode"] for s in summaries]
    epochs = min(len(s["train_losses"]) for s in summaries)
    (em, es), (tm, ts) = mean_std(eval_mode), mean_std(train_mode)
    article = published["test_accuracy"]
    return {
        "seeds": [s.get("seed") for s in summaries], "runs": [s["run"] for s in summaries],
        "test_accuracy": {"mean": em, "std": es, "values": eval_mode},
        "test_accuracy_train_mode": {"mean": tm, "std": ts, "values": train_mode},
        "train_loss": [dict(zip(("mean", "std"), mean_std([s["train_losses"][e] for s in summaries])))
                       for e in range(epochs)],
        "article_test_accuracy": article,
        "article_z": (article - tm) / ts if ts > 0 else None,  # the article measured in train mode
        "seeds_reaching_article": sum(v >= article for v in train_mode),
    }


def format_distribution(d: dict, published: dict) -> list[str]:
    n = len(d["runs"])
    e, t = d["test_accuracy"], d["test_accuracy_train_mode"]
    lines = [f"over {n} seeds: {100 * e['mean']:.1f}% ± {100 * e['std']:.1f} (eval mode), "
             f"{100 * t['mean']:.1f}% ± {100 * t['std']:.1f} (train mode, as the article measured)",
             "epoch  article loss  mean loss ± std over the seeds"]
    for i, loss in enumerate(d["train_loss"]):
        article = published["train_losses"][i] if i < len(published["train_losses"]) else None
        shown = f"{article:.3f}" if article is not None else "-"
        lines.append(f"{i + 1:5d}  {shown:>12}  {loss['mean']:.3f} ± {loss['std']:.3f}")
    where = (f"{d['article_z']:+.1f} standard deviations from the train-mode mean" if d["article_z"] is not None
             else "(one seed: no spread to compare with)")
    lines.append(f"the article's {100 * d['article_test_accuracy']:.1f}% (train mode) is {where}; "
                 f"{d['seeds_reaching_article']} of {n} seeds reached it")
    return lines
