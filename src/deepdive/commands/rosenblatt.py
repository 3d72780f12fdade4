"""``deepdive rosenblatt``: Rosenblatt's perceptron on separable data and XOR, beside a backprop MLP."""
from __future__ import annotations

from deepdive.errors import UserError
from deepdive.output import strict_json
from deepdive.storage.files import output_file

HELP = "Rosenblatt's perceptron on separable data and XOR, beside a backprop MLP"


def add_arguments(p) -> None:
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", action="store_true", help="the decision lines and the MLP's regions, as a PNG")
    p.add_argument("--out", metavar="FILE", help="the plot's file (implies --plot; default rosenblatt.png here)")


def run(args) -> int:
    from deepdive.teach.rosenblatt import fit_all, format_results, plot, run

    if args.max_epochs <= 0:
        raise UserError(f"--max-epochs {args.max_epochs} is invalid: give a positive integer")
    out = output_file(args.out or "rosenblatt.png", (".png",)) if args.plot or args.out else None
    fitted = fit_all(args.max_epochs, args.seed)
    results = run(args.max_epochs, args.seed, fitted)
    if out:
        plot(fitted, out)
        results["figure"] = str(out)
    if args.json:
        print(strict_json(results))
    else:
        print("\n".join(format_results(results, args.max_epochs)))
        if "figure" in results:
            print(f"figure: {results['figure']}")
    return 0

