"""``deepdive evaluate``: a run's model reloaded and measured again on test data (per class too)."""
from __future__ import annotations

from deepdive.config.names import DEVICES
from deepdive.output import printable, strict_json

HELP = "reload a run's model and measure it on test data"


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--dataset", help="another dataset with the same classes and input shape")
    p.add_argument("--data-dir", help="where that dataset lives")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--per-class", action="store_true", help="also each class's accuracy")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")


def run(args) -> int:
    from deepdive.inference.evaluate import evaluate_run
    from deepdive.training.threads import set_threads

    set_threads(None)
    result = evaluate_run(args.run_dir, args.dataset, args.data_dir, args.device, per_class=args.per_class)
    if args.json:
        print(strict_json(result))
        return 0
    print(printable(f"{result['run']}: {result['dataset']}, {result['examples']} test images: "
                    f"accuracy {100 * result['test_accuracy']:.2f}%, loss {result['test_loss']:.4f}"))
    if args.per_class:  # class names come from the data: escaped before they reach the terminal
        names = [printable(r["class"]) for r in result["per_class"]]
        width = max(len(n) for n in names)
        print(f"  {'class':<{width}}  {'images':>6}  {'correct':>7}  accuracy")
        for name, r in zip(names, result["per_class"]):
            shown = f"{100 * r['accuracy']:7.2f}%" if r["accuracy"] is not None else "      -"
            print(f"  {name:<{width}}  {r['images']:>6}  {r['correct']:>7}  {shown}")
    return 0

