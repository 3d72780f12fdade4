"""``deepdive report``: RUN/report.html, one self-contained page with the run's figures and tables."""
from __future__ import annotations

from deepdive.config.names import DEVICES
from deepdive.output import strict_json

HELP = "RUN/report.html: one self-contained page with the run's figures and tables"


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--svg", action="store_true", help="the figures in RUN/figures/ as SVG too")
    p.add_argument("--json", action="store_true", help="the report's figures as one JSON object on stdout")


def run(args) -> int:
    from deepdive.viz.report import write_report

    result = write_report(args.run_dir, args.device, args.svg)
    if args.json:
        print(strict_json(result))
    else:
        print(f"report: {result['report']} (test accuracy {100 * result['test_accuracy']:.2f}%, "
              f"{len(result['figures'])} figures)")
    return 0

