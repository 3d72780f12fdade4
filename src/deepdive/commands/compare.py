"""``deepdive compare``: runs side by side: a table, overlaid curves, compare.png and compare.html."""
from __future__ import annotations

import logging
from pathlib import Path

from deepdive.output import strict_json
from deepdive.storage.atomic import write_bytes_atomic

HELP = "runs side by side: a table, overlaid curves, compare.png and compare.html"


def add_arguments(p) -> None:
    p.add_argument("runs", metavar="RUN_DIR", nargs="+")
    p.add_argument("--out", metavar="DIR", default=".", help="where compare.png and compare.html go (default here)")
    p.add_argument("--json", action="store_true", help="the table as one JSON object on stdout")


def run(args) -> int:
    from deepdive.viz.compare import collect, draw, page, table_lines

    rows, histories = collect(args.runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = draw(rows, histories)
    write_bytes_atomic(out / "compare.png", png)
    write_bytes_atomic(out / "compare.html", page(rows, png).encode())
    datasets = sorted({r["dataset"] for r in rows})
    if len(datasets) > 1:
        logging.getLogger("deepdive").warning("warning: the runs are on different datasets (%s): their accuracies "
                                              "are not comparable", ", ".join(datasets))
    if args.json:
        print(strict_json({"runs": rows, "figure": str(out / "compare.png"), "page": str(out / "compare.html")}))
        return 0
    for line in table_lines(rows):
        print(line)
    print(f"figure: {out / 'compare.png'}; page: {out / 'compare.html'}")
    return 0

