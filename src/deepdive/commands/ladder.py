"""``deepdive ladder``: from the article's 61% to the fast recipe, one change per rung, each measured over seeds."""
from __future__ import annotations

import sys
from pathlib import Path

from deepdive.config.names import DEVICES
from deepdive.errors import UserError
from deepdive.output import strict_json

HELP = "from the article's experiment to the fast recipe, one change per rung, measured over seeds"


def add_arguments(p) -> None:
    from deepdive.config.ladder import RUNGS, SCALES

    p.add_argument("--scale", default="small", choices=list(SCALES),
                   help="; ".join(f"{k}: {v['about']}" for k, v in SCALES.items()) + " (default small)")
    p.add_argument("--seeds", default="0-2", metavar="SEEDS", help="seeds of every rung, e.g. 0-2 (default) or 0,5")
    p.add_argument("--rungs", metavar="RUNGS", help=f"only these rungs, e.g. 0-4 (default all {len(RUNGS)})")
    p.add_argument("--data-dir", default="./data", help="holds cifar-10-batches-py/ (downloaded if missing)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--out", metavar="DIR", help="the ladder's folder (default runs/ladder-SCALE); started again "
                   "with the same --out, a ladder continues where it stopped")
    p.add_argument("--overwrite", action="store_true", help="train every run again, replacing those in --out")
    p.add_argument("--peer", metavar="FILE", help="bench/vs_airbench_cpu.py's JSON: airbench94 as measured there "
                   "becomes the staircase's reference on this copy of the data")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (the table on stderr)")


def run(args) -> int:
    from deepdive.storage.atomic import write_atomic, write_bytes_atomic
    from deepdive.teach.article_seeds import parse_seeds
    from deepdive.teach.ladder import rung_indices, run_ladder, table_lines
    from deepdive.viz.ladder import draw_staircase, page

    seeds = parse_seeds(args.seeds)
    rungs = rung_indices(args.rungs)
    peer = read_peer(args.peer) if args.peer else None
    out = Path(args.out or f"runs/ladder-{args.scale}")

    def progress(line: str) -> None:
        print(f"ladder: {line}", file=sys.stderr, flush=True)

    result = run_ladder(args.scale, seeds, out, args.data_dir, args.device, rungs, args.overwrite,
                        progress=progress)
    if peer is not None:
        result["references"] = [peer if r["name"].startswith("airbench94 on this copy") else r
                                for r in result["references"]]
    png = draw_staircase(result)
    result["files"] = {name: str(out / name) for name in ("ladder.json", "staircase.png", "ladder.html")}
    write_bytes_atomic(out / "staircase.png", png)
    write_bytes_atomic(out / "ladder.html", page(result, png).encode())
    write_atomic(out / "ladder.json", lambda tmp: Path(tmp).write_text(strict_json(result)))
    lines = table_lines(result) + [f"ladder.json, staircase.png, ladder.html: {out}"]
    if args.json:
        print("\n".join(lines), file=sys.stderr)
        print(strict_json(result))
    else:
        print("\n".join(lines))
    return 0


def read_peer(path: str) -> dict:
    """airbench94's measured mean (accuracy with its TTA, training seconds) from bench/vs_airbench_cpu.py's JSON."""
    import json
    import math

    from deepdive.storage.files import read_bounded

    fix = "give the JSON file bench/vs_airbench_cpu.py wrote (--json-out)"
    if not Path(path).is_file():  # (a FIFO or a device would hang the read)
        raise UserError(f"--peer {path} is not a file: {fix}")
    try:
        peer = json.loads(read_bounded(Path(path), 1 << 20, fix).decode())["airbench94"]
        accuracy, seconds = float(peer["tta_accuracy"]["mean"]), float(peer["train_seconds"]["mean"])
        runs, where = len(peer["seeds"]), str(peer["where"])[:200]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--peer {path}: cannot read it ({type(exc).__name__}): {fix}") from None
    except (ValueError, KeyError, TypeError, OverflowError):
        raise UserError(f"--peer {path} is not bench/vs_airbench_cpu.py's result: {fix}") from None
    if not (0 <= accuracy <= 1 and math.isfinite(seconds) and seconds > 0):
        raise UserError(f"--peer {path} holds an accuracy outside 0..1 or a time that is not positive: {fix}")
    return {"name": "airbench94 on this copy (measured)", "test_accuracy": accuracy, "train_seconds": seconds,
            "source": f"bench/vs_airbench_cpu.py: airbench94 (PyPI airbench) on this data, {where}, mean of "
                      f"{runs} seed(s) with its TTA ({path})"}
