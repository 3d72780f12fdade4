"""``deepdive claims [NAME…]``: the article's claims as seeded experiments: numbers and a verdict for each.

Human-readable blocks on stdout by default (each as soon as its experiment ends), a summary table at the end;
``--json`` puts exactly one JSON object on stdout and the progress on stderr. ``--out DIR`` writes
``claims.json`` and ``claims.html``; ``--plot`` draws one PNG per claim into it (``./claims`` when no ``--out``).
"""
from __future__ import annotations

import logging

from deepdive.errors import UserError
from deepdive.output import strict_json

log = logging.getLogger("deepdive")

HELP = "the article's claims as seeded experiments: numbers and a verdict for each"


def add_arguments(p) -> None:
    from deepdive.claims import CLAIMS

    p.add_argument("names", metavar="NAME", nargs="*",
                   help="claims to run, by name or number (default all): " + ", ".join(
                       f"{c.number} {c.name}" for c in CLAIMS.values()))
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress on stderr)")
    p.add_argument("--plot", action="store_true", help="one PNG per claim, in --out (default ./claims)")
    p.add_argument("--out", metavar="DIR", help="write claims.json and claims.html (and the PNGs) into DIR")
    p.add_argument("--fast", action="store_true", help="the small settings the test suite runs (less certain numbers)")
    p.add_argument("--seed", type=int, default=0, help="seed of every experiment (default 0)")
    p.add_argument("--data-dir", default="./data",
                   help="holds cifar-10-batches-py/ for claims 12 and 13 (never downloaded here; default ./data)")


def run(args) -> int:
    from deepdive.claims import CLAIMS
    from deepdive.claims.report import format_block, out_dir, run_claims, selected, summary

    if args.list:
        for c in CLAIMS.values():
            print(f"{c.number:2d}  {c.name:<22} {c.section}: {c.text}")
        return 0
    claims = selected(args.names)
    if not 0 <= args.seed < 2 ** 32:
        raise UserError(f"--seed {args.seed} is out of range: give 0 to {2 ** 32 - 1}")
    out = out_dir(args.out or ("claims" if args.plot else None))

    def show(entry: dict, i: int, total: int) -> None:
        if not args.json:
            print("\n".join(format_block(entry, i, total)), flush=True)

    def starting(c, i: int, total: int) -> None:
        if args.json:
            log.info("[%d/%d] %s ...", i, total, c.name)

    report = run_claims(claims, args.fast, args.seed, args.data_dir, args.plot, out, on_entry=show,
                        on_start=starting)
    missing = [r["name"] for r in report["claims"] if r["verdict"] == "not measured"]
    if missing:
        log.warning("warning: not measured (CIFAR-10 missing in %s): %s", args.data_dir, ", ".join(missing))
    if args.json:
        print(strict_json(report))
        return 0
    print("\n".join(summary(report)))
    return 0
