"""``deepdive claims [NAME…]``: run the article's claims as experiments and print each verdict.

Human-readable blocks on stdout by default (each as soon as its experiment
ends), a summary table at the end; ``--json`` puts exactly one JSON object on
stdout and the progress on stderr. ``--out DIR`` writes ``claims.json`` and
``claims.html`` (one self-contained page: each claim, its setup, numbers,
verdict and figure); ``--plot`` draws one PNG per claim into it (``./claims``
when no ``--out`` is given).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger("deepdive")

JSON_FILE, HTML_FILE = "claims.json", "claims.html"


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


def selected(names: list[str]):
    """The claims named (names or numbers, in the order given, each once), or all of them."""
    from deepdive.claims import CLAIMS, claim

    if not names:
        return list(CLAIMS.values())
    chosen = []
    for name in names:
        c = claim(name)
        if c not in chosen:
            chosen.append(c)
    return chosen


def run(args) -> int:
    from deepdive.claims import CLAIMS
    from deepdive.cli import strict_json

    if args.list:
        for c in CLAIMS.values():
            print(f"{c.number:2d}  {c.name:<22} {c.section}: {c.text}")
        return 0
    claims = selected(args.names)
    if not 0 <= args.seed < 2 ** 32:
        from deepdive.errors import UserError
        raise UserError(f"--seed {args.seed} is out of range: give 0 to {2 ** 32 - 1}")
    out = _out_dir(args.out or ("claims" if args.plot else None))
    started, results = time.perf_counter(), []
    for i, c in enumerate(claims, 1):
        t0 = time.perf_counter()
        if args.json:
            log.info("[%d/%d] %s ...", i, len(claims), c.name)
        result = c.run(fast=args.fast, seed=args.seed, data_dir=args.data_dir)
        entry = {"number": c.number, "name": c.name, "section": c.section, "claim": c.text,
                 "setup": plain(result.setup), "numbers": plain(result.numbers), "verdict": result.verdict,
                 "explanation": result.explanation, "key": result.key, "figure": None}
        if args.plot:
            figure = out / f"claim-{c.number:02d}-{c.name}.png"
            c.plot(result, figure)
            entry["figure"] = str(figure)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        results.append(entry)
        if not args.json:
            print("\n".join(format_block(entry, i, len(claims))), flush=True)
    report = {"claims": results, "fast": args.fast, "seed": args.seed, "data_dir": str(args.data_dir),
              "seconds": round(time.perf_counter() - started, 3), "out": str(out) if out else None,
              "verdicts": {r["name"]: r["verdict"] for r in results}}
    if out:
        from deepdive.storage.atomic import write_bytes_atomic

        write_bytes_atomic(out / JSON_FILE, (strict_json(report) + "\n").encode())
        write_bytes_atomic(out / HTML_FILE, page(report).encode())
    missing = [r["name"] for r in results if r["verdict"] == "not measured"]
    if missing:
        log.warning("warning: not measured (CIFAR-10 missing in %s): %s", args.data_dir, ", ".join(missing))
    if args.json:
        print(strict_json(report))
        return 0
    print("\n".join(summary(report)))
    return 0


def _out_dir(path) -> Path | None:
    """The output folder, created if missing; a bad one is one line (exit 2) before any experiment runs."""
    import os

    from deepdive.errors import UserError

    if path is None:
        return None
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder (it will hold {JSON_FILE}, {HTML_FILE} and the PNGs)")
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} is not writable: choose another folder")
    return out


def plain(value):
    """NumPy scalars and arrays as the Python numbers and lists JSON holds."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _number(v) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "-"}[v]
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_number(x) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_number(x)}" for k, x in v.items())
    return str(v)


MAX_ROWS = 12


def format_numbers(numbers: dict) -> list[str]:
    """One line per measured number; a list of rows as a small table (long ones left to --json/--out)."""
    lines = []
    for key, value in numbers.items():
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            if len(value) > MAX_ROWS:
                lines.append(f"{key}: {len(value)} rows (all in --json and claims.json)")
                continue
            columns = list(value[0])
            cells = [[_number(r.get(c)) for c in columns] for r in value]
            widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
            lines.append(f"{key}:")
            lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths)))
            lines += ["  " + "  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in cells]
        else:
            lines.append(f"{key}: {_number(value)}")
    return lines


def format_block(entry: dict, i: int, total: int) -> list[str]:
    lines = [f"[{i}/{total}] claim {entry['number']}, {entry['name']} (the article's section: {entry['section']})",
             f"  claim:    {entry['claim']}",
             "  setup:    " + "; ".join(f"{k}: {_number(v)}" for k, v in entry["setup"].items())]
    lines += [("  measured: " if n == 0 else "            ") + line
              for n, line in enumerate(format_numbers(entry["numbers"]) or ["-"])]
    lines.append(f"  verdict:  {entry['verdict'].upper()}: {entry['explanation']}")
    tail = f"  ({entry['seconds']:.1f} s" + (f"; figure {entry['figure']})" if entry["figure"] else ")")
    return lines + [tail, ""]


def summary(report: dict) -> list[str]:
    rows = report["claims"]
    name_w = max(len("claim"), *(len(r["name"]) for r in rows))
    verdict_w = max(len(r["verdict"]) for r in rows)
    lines = [f"{'#':>2}  {'claim':<{name_w}}  {'verdict':<{verdict_w}}  key number"]
    lines += [f"{r['number']:>2}  {r['name']:<{name_w}}  {r['verdict']:<{verdict_w}}  {r['key']}" for r in rows]
    lines.append(f"{len(rows)} claim(s) in {report['seconds']:.0f} s" + (" (--fast settings)" if report["fast"] else "")
                 + (f"; {report['out']}/{JSON_FILE}, {report['out']}/{HTML_FILE}" if report["out"] else ""))
    return lines


COLORS = {"holds": "#1e7d32", "holds under stated conditions": "#b26a00", "does not hold": "#b3261e",
          "not measured": "#666"}


def page(report: dict) -> str:
    """claims.html: the summary table, then each claim with its setup, numbers, verdict and embedded figure."""
    import html
    import json

    from deepdive.viz.report import STYLE, _image, _table

    def verdict(v: str) -> str:
        return f"<b style='color:{COLORS.get(v, '#222')}'>{html.escape(v)}</b>"

    head = "".join(f"<th>{h}</th>" for h in ("#", "claim", "section", "verdict", "key number"))
    body = "".join(f"<tr><td>{r['number']}</td><td><a href='#{r['name']}'>{html.escape(r['name'])}</a></td>"
                   f"<td>{html.escape(r['section'])}</td><td>{verdict(r['verdict'])}</td>"
                   f"<td>{html.escape(r['key'])}</td></tr>" for r in report["claims"])
    sections = []
    for r in report["claims"]:
        numbers = []
        for k, v in r["numbers"].items():
            text = json.dumps(v, ensure_ascii=False)
            cell = (f"<details><summary>show</summary><code>{html.escape(text)}</code></details>"
                    if len(text) > 300 else f"<code>{html.escape(text)}</code>")
            numbers.append(f"<tr><td>{html.escape(k)}</td><td>{cell}</td></tr>")
        figure = _image(r["figure"]) if r["figure"] and Path(r["figure"]).is_file() else ""
        setup = [[k, json.dumps(v, ensure_ascii=False)] for k, v in r["setup"].items()]
        sections.append(
            f"<h2 id='{r['name']}'>{r['number']}. {html.escape(r['name'])}</h2>"
            f"<p><i>The article, {html.escape(r['section'])}:</i> {html.escape(r['claim'])}</p>"
            f"<p>Verdict: {verdict(r['verdict'])}: {html.escape(r['explanation'])}</p>"
            f"<h3>Setup</h3>{_table(setup, ['setting', 'value'])}"
            f"<h3>Measured</h3><table><tbody>{''.join(numbers)}</tbody></table>{figure}"
            f"<p><small>{r['seconds']:.1f} s</small></p>")
    settings = f"seed {report['seed']}" + (", --fast settings" if report["fast"] else "")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>deepdive: the article's claims, "
            f"measured</title><style>{STYLE}</style></head><body><h1>The article's claims, measured</h1>"
            f"<p>{len(report['claims'])} claim(s), {settings}, {report['seconds']:.0f} s. Each claim is a small seeded "
            f"experiment (<code>deepdive claims NAME</code>); the verdicts: holds, holds under stated conditions, "
            f"does not hold, not measured.</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"{''.join(sections)}</body></html>\n")
