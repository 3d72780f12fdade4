"""The article's claims run as experiments, one report: each claim's setup, numbers, verdict and figure.

``run_claims`` runs the chosen claims in order and hands each entry to a callback as soon as its experiment
ends; with an output folder it writes ``claims.json`` and ``claims.html`` (one self-contained page). The
``deepdive claims`` command (commands/claims.py) prints the blocks and the summary.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger("deepdive")

JSON_FILE, HTML_FILE = "claims.json", "claims.html"


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


def run_claims(claims: list, fast: bool, seed: int, data_dir: str, plot: bool, out: Path | None,
               on_entry=None, on_start=None, clock=time.perf_counter) -> dict:
    """Run ``claims`` in order (``on_start(claim, i, total)`` before each, ``on_entry(entry, i, total)`` as each
    ends); the report, also written into ``out`` when given."""
    started, results = clock(), []
    for i, c in enumerate(claims, 1):
        if on_start:
            on_start(c, i, len(claims))
        t0 = clock()
        result = c.run(fast=fast, seed=seed, data_dir=data_dir)
        entry = {"number": c.number, "name": c.name, "section": c.section, "claim": c.text,
                 "setup": plain(result.setup), "numbers": plain(result.numbers), "verdict": result.verdict,
                 "explanation": result.explanation, "key": result.key, "figure": None}
        if plot:
            figure = out / f"claim-{c.number:02d}-{c.name}.png"
            c.plot(result, figure)
            entry["figure"] = str(figure)
        entry["seconds"] = round(clock() - t0, 3)
        results.append(entry)
        if on_entry:
            on_entry(entry, i, len(claims))
    report = {"claims": results, "fast": fast, "seed": seed, "data_dir": str(data_dir),
              "seconds": round(clock() - started, 3), "out": str(out) if out else None,
              "verdicts": {r["name"]: r["verdict"] for r in results}}
    if out:
        from deepdive.output import strict_json
        from deepdive.storage.atomic import write_bytes_atomic

        write_bytes_atomic(out / JSON_FILE, (strict_json(report) + "\n").encode())
        write_bytes_atomic(out / HTML_FILE, page(report).encode())
    return report


def out_dir(path) -> Path | None:
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

    from deepdive.viz.report import STYLE, html_table, image_tag

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
        figure = image_tag(r["figure"]) if r["figure"] and Path(r["figure"]).is_file() else ""
        setup = [[k, json.dumps(v, ensure_ascii=False)] for k, v in r["setup"].items()]
        sections.append(
            f"<h2 id='{r['name']}'>{r['number']}. {html.escape(r['name'])}</h2>"
            f"<p><i>The article, {html.escape(r['section'])}:</i> {html.escape(r['claim'])}</p>"
            f"<p>Verdict: {verdict(r['verdict'])}: {html.escape(r['explanation'])}</p>"
            f"<h3>Setup</h3>{html_table(setup, ['setting', 'value'])}"
            f"<h3>Measured</h3><table><tbody>{''.join(numbers)}</tbody></table>{figure}"
            f"<p><small>{r['seconds']:.1f} s</small></p>")
    settings = f"seed {report['seed']}" + (", --fast settings" if report["fast"] else "")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>deepdive: the article's claims, "
            f"measured</title><style>{STYLE}</style></head><body><h1>The article's claims, measured</h1>"
            f"<p>{len(report['claims'])} claim(s), {settings}, {report['seconds']:.0f} s. Each claim is a small seeded "
            f"experiment (<code>deepdive claims NAME</code>); the verdicts: holds, holds under stated conditions, "
            f"does not hold, not measured.</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"{''.join(sections)}</body></html>\n")
