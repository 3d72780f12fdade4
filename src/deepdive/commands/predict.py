"""``deepdive predict``: top-K classes for image files with a run's model."""
from __future__ import annotations

import sys

from deepdive.config.names import DEVICES
from deepdive.output import printable, strict_json

HELP = "top-K classes for image files with a run's model"


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", metavar="IMAGE_OR_DIR", nargs="+", help="image files or folders of them")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--json", action="store_true", help='a list of {"file", "predictions": [...]} or {"file", "error"}')


def run(args) -> int:
    from deepdive.inference.predict import predict_files
    from deepdive.training.threads import set_threads

    set_threads(None)
    results = predict_files(args.run_dir, args.images, args.top_k, args.device)
    predicted = sum(1 for r in results if "predictions" in r)
    if args.json:
        print(strict_json(results))
    else:
        for r in results:  # file and class names come from outside: escaped before they reach the terminal
            if "error" in r:
                print(printable(f"{r['file']}: error: {r['error']}"))
            else:
                tops = ", ".join(f"{p['class']} {100 * p['probability']:.1f}%" for p in r["predictions"])
                print(printable(f"{r['file']}: {tops}"))
    if predicted == 0:
        print("deepdive predict: error: no image could be predicted: give image files PIL can open",
              file=sys.stderr)
        return 2
    if predicted < len(results):  # a partial failure is a failure: scripts must not take it for success
        print(f"deepdive predict: error: {len(results) - predicted} of {len(results)} file(s) could not be predicted "
              "(named above): give image files PIL can open", file=sys.stderr)
        return 1
    return 0

