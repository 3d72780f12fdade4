"""``deepdive optimizers``: the article's optimizer figure: paths over 2-D surfaces, steps to tolerance."""
from __future__ import annotations

from deepdive.errors import UserError
from deepdive.output import strict_json
from deepdive.storage.files import output_file

HELP = "the article's optimizer figure: paths over 2-D surfaces, steps to tolerance"


def add_arguments(p) -> None:
    p.add_argument("--surface", default="quadratic", help="quadratic (the zigzag), rosenbrock, saddle or noisy")
    p.add_argument("--optimizers", default=None, metavar="A,B,...",
                   help="which (default all: sgd,momentum,nesterov,adagrad,adadelta,rmsprop,adam)")
    p.add_argument("--lr", type=float, help="one learning rate for all (default: each optimizer's own on the surface)")
    p.add_argument("--momentum", type=float, help="γ for momentum and nesterov (default: the surface's, 0.7 on quadratic, else 0.9)")
    p.add_argument("--steps", type=int, help="default: the surface's (300; rosenbrock 3000)")
    p.add_argument("--tol", type=float, help="f(θ) − f_min counted as converged (default 1e-4; noisy 1)")
    p.add_argument("--seed", type=int, default=0, help="the noisy surface's gradient noise")
    p.add_argument("--animate", action="store_true", help="a GIF in which the paths grow, instead of a PNG")
    p.add_argument("--out", metavar="FILE", help="default optimizers-SURFACE.png (.gif with --animate) here")
    p.add_argument("--json", action="store_true", help="the figures as one JSON object on stdout")


def run(args) -> int:
    """Paths of the article's optimizers on a 2-D surface: a figure and steps-to-tolerance per optimizer."""
    from deepdive.viz.paths import OPTIMIZER_NAMES, momentum_verdict, run_paths, surface

    names = args.optimizers.split(",") if args.optimizers else list(OPTIMIZER_NAMES)
    if args.steps is not None and not 0 < args.steps <= 100_000:
        raise UserError(f"--steps {args.steps} is invalid: give 1 to 100000")
    for flag, value in (("--lr", args.lr), ("--tol", args.tol)):
        if value is not None and not 0 < value < float("inf"):
            raise UserError(f"{flag} {value} is invalid: give a positive number")
    if args.momentum is not None and not 0 <= args.momentum < 1:
        raise UserError(f"--momentum {args.momentum} is out of range: give a value in [0, 1)")
    s = surface(args.surface)
    out = output_file(args.out or f"optimizers-{args.surface}.{'gif' if args.animate else 'png'}",
                      (".gif",) if args.animate else (".png",))
    steps, tol = args.steps or s.steps, args.tol or s.tol
    paths = run_paths(args.surface, names, steps, tol, args.lr, args.momentum, args.seed)
    from deepdive.viz.figures import draw_paths
    draw_paths(s, paths, out, f"{args.surface}: {s.title}", tol, animate=args.animate)
    verdict = momentum_verdict(paths, steps)
    rows = [{"optimizer": p.optimizer, "lr": p.lr, "steps_to_tolerance": p.steps_to_tolerance,
             "final_loss": p.final_loss, "steps_taken": len(p.points) - 1} for p in paths]
    if args.json:
        print(strict_json({"surface": args.surface, "tol": tol, "steps": steps, "figure": str(out),
                           "optimizers": rows, "momentum_verdict": verdict}))
        return 0
    print(f"{args.surface}: {s.title}, start {s.start}, {steps} steps, tolerance f − f_min <= {tol:g}")
    print(f"  {'optimizer':<10} {'lr':>8} {'steps to tol':>13} {'final f − f_min':>16}")
    for r in rows:
        reached = str(r["steps_to_tolerance"]) if r["steps_to_tolerance"] is not None else "not reached"
        note = "" if r["steps_taken"] == steps else f"  (diverged after {r['steps_taken']} steps)"
        print(f"  {r['optimizer']:<10} {r['lr']:>8g} {reached:>13} {r['final_loss']:>16.3e}{note}")
    if verdict:
        print(verdict)
    print(f"figure: {out}")
    return 0

