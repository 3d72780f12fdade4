"""``deepdive reproduce``: the article's exact experiment (or its distribution over seeds) beside its published numbers."""
from __future__ import annotations

import sys

from deepdive.config.names import DEVICES
from deepdive.errors import UserError
from deepdive.output import strict_json

HELP = "the article's exact experiment, side by side with its published numbers"


def add_arguments(p) -> None:
    p.add_argument("experiment", choices=["article"], help="what to reproduce")
    p.add_argument("--data-dir", default="./data", help="holds cifar-10-batches-py/ (downloaded if missing)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--limit-train", type=int, metavar="N")
    p.add_argument("--limit-test", type=int, metavar="N")
    p.add_argument("--seed", type=int, help="the run's seed (default 0); --seeds gives several")
    p.add_argument("--seeds", metavar="SEEDS", help="one run per seed, e.g. 0-9: mean ± std of the accuracies and "
                   "losses, and where the article's 61.2%% falls (runs in OUT/seed-N)")
    p.add_argument("--jobs", type=int, default=1, help="with --seeds: runs at once, as separate processes (default 1)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--out", metavar="DIR")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    """``--recipe article`` with the reproduction's few flags, then the article's numbers beside the run's."""
    from deepdive.config.resolve import resolve_config
    from deepdive.config.recipes import ARTICLE
    from deepdive.storage.runs import RunDir
    from deepdive.training.setup import run_training
    from deepdive.viz.run_figures import when_complete

    if args.seeds is not None and args.seed is not None:
        raise UserError("--seed and --seeds cannot be combined: --seeds names every run's seed; drop --seed")
    if args.seeds is None and args.jobs != 1:
        raise UserError(f"--jobs {args.jobs} runs several seeds at once: add --seeds, e.g. --seeds 0-9 --jobs 2")
    flags = {"recipe": "article", "data_dir": args.data_dir, "epochs": args.epochs,
             "seed": 0 if args.seed is None else args.seed,
             "device": args.device, "limit_train": args.limit_train, "limit_test": args.limit_test,
             "download": args.download}
    if args.seeds is not None:
        return _reproduce_seeds(args, {k: v for k, v in flags.items() if k != "seed"})
    if args.out:
        flags["out"] = args.out
    summary = run_training(resolve_config(flags), overwrite=args.overwrite, figures=when_complete)
    published = ARTICLE["published"]
    lines = ["epoch  article loss  this run: last 1,000-batch block  whole epoch"]
    for m in RunDir(summary["run"]).metrics():
        losses = published["train_losses"]
        article = f"{losses[m['epoch'] - 1]:.3f}" if m["epoch"] <= len(losses) else "   -"
        window = m.get("train_loss_last_block")
        shown = "-" if window is None else f"{window:.3f}"
        lines.append(f"{m['epoch']:5d}  {article:>12}  {shown:>30}  {m['train_loss']:11.3f}")
    lines.append("(the article's script prints the mean of each 1,000 batches, three lines an epoch, never "
                 "'Epoch: N | Loss': its published per-epoch losses cannot come from its printed code)")
    lines.append(f"test accuracy: article {100 * published['test_accuracy']:.1f}% (measured in train mode, "
                 f"dropout on); this run {100 * summary['test_accuracy']:.1f}% (eval mode), "
                 f"{100 * summary['test_accuracy_train_mode']:.1f}% (train mode, as the article measured)")
    summary["article"] = dict(published)
    return _print_table(lines, summary, args.json, f"run folder: {summary['run']}")


def _print_table(lines: list[str], result: dict, as_json: bool, where: str) -> int:
    """A reproduction's table: on stdout, or with --json on stderr beside the one JSON object on stdout."""
    if as_json:
        print("\n".join(lines), file=sys.stderr)
        print(strict_json(result))
    else:
        print("\n".join(lines))
        print(where)
    return 0


def _reproduce_seeds(args, flags: dict) -> int:
    """``reproduce article --seeds 0-9``: the article's recipe once per seed, as a distribution."""
    import time
    from pathlib import Path

    from deepdive.config.recipes import ARTICLE
    from deepdive.teach.article_seeds import distribution, format_distribution, parse_seeds, run_seeds

    seeds = parse_seeds(args.seeds)
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-article-seeds")
    summaries = run_seeds(flags, seeds, out, args.jobs, args.overwrite)
    result = distribution(summaries, ARTICLE["published"])
    lines = format_distribution(result, ARTICLE["published"])
    from deepdive.storage.atomic import write_atomic
    write_atomic(out / "distribution.json", lambda tmp: Path(tmp).write_text(strict_json(result)))
    return _print_table(lines, result, args.json, f"runs and distribution.json: {out}")

