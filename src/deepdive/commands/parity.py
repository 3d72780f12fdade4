"""``deepdive parity``: both engines stepped together on the same batches; every number compared."""
from __future__ import annotations

import json
import sys

from deepdive.config.names import OPTIMIZERS
from deepdive.config.specs import scratch_models
from deepdive.errors import UserError
from deepdive.storage.files import output_file

HELP = "step torch and the from-scratch engine together; compare every number"


def add_arguments(p) -> None:
    p.add_argument("--model", default="simplenet", choices=list(scratch_models()),
                   help="a model both engines run (default simplenet)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--optimizer", default="adam", choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float, help="learning rate (default: the optimizer's own, as `deepdive list` shows)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("-b", "--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print every step's differences as one JSON object")
    p.add_argument("--plot", action="store_true", help="the relative differences per step, log scale, as a PNG")
    p.add_argument("--out", metavar="FILE", help="the plot's file (implies --plot; default parity-MODEL.png here)")


def run(args) -> int:
    import dataclasses

    from deepdive.teach.parity import format_report, run_parity
    from deepdive.training.threads import set_threads

    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value <= 0:
            raise UserError(f"{flag} {value} is invalid: give a positive integer")
    if args.lr is not None and not args.lr > 0:
        raise UserError(f"--lr {args.lr} is invalid: give a positive number")
    out = output_file(args.out or f"parity-{args.model}.png", (".png",)) if args.plot or args.out else None
    set_threads(1)  # torch and NumPy BLAS threads on 2 cores fight; one thread each is faster here
    report = run_parity(args.model, args.steps, args.optimizer, args.dtype, lr=args.lr,
                        batch_size=args.batch_size, seed=args.seed)
    lines, ok = format_report(report, args.model, args.optimizer, args.dtype)
    if out:
        from deepdive.teach.parity import plot
        plot(report, out, f"parity: {args.model}, {args.optimizer}, {args.dtype}")
        lines.append(f"figure: {out}")
    if args.json:
        print("\n".join(lines), file=sys.stderr)
        print(json.dumps({"ok": ok, "model": args.model, "optimizer": args.optimizer, "dtype": args.dtype,
                          "steps": [dataclasses.asdict(d) for d in report]}))
    else:
        print("\n".join(lines))
    return 0 if ok else 1

