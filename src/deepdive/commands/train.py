"""``deepdive train``: a new run, a resumed one, a torchrun restart, or N processes with --nproc: decided here."""
from __future__ import annotations

import json

from deepdive.commands.train_flags import add_train_flags, config_flags
from deepdive.errors import UserError
from deepdive.output import strict_json

HELP = "train a model; leaves a run folder"


def add_arguments(p) -> None:
    add_train_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--force", action="store_true", help="with --resume: accept flags that change the run")
    p.add_argument("--json", action="store_true", help="print only the summary, as one JSON object, on stdout")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration (config.json's JSON object) on stdout and exit")


def run(args) -> int:
    """The one home of ``deepdive train``: ``--nproc N`` relaunches this command in N processes (torchrun);
    ``--resume`` continues a run; otherwise a new run - or, in a worker torchrun restarted, its run continued."""
    from deepdive.training.ddp.torchrun import env_rank
    from deepdive.training.ddp.launcher import launch

    flags = config_flags(args)
    if args.nproc is not None and not args.print_config:  # distributed: torchrun runs this very command
        code = launch(args.argv, args.nproc, flags, getattr(args, "config", None), args.resume, args.force,
                      args.overwrite)
        if code is not None:
            return code
    summary = _resume(args, flags) if args.resume else _new(args, flags)
    if summary is not None and env_rank() == 0:  # under torchrun, rank 0 alone reports
        report_summary(summary, args.json)
    return 0


def _resume(args, flags: dict) -> dict | None:
    from deepdive.training.hooks import pause_hook_from_env
    from deepdive.training.resume import open_resume, resume_run
    from deepdive.viz.run_figures import when_complete

    for given, why in (("config", "the run's own config is used"), ("recipe", "a resumed run keeps its values: "
                        "give the ones to change as flags, with --force")):
        if hasattr(args, given):
            raise UserError(f"--{given} cannot be combined with --resume: {why}")
    if args.overwrite:
        raise UserError("--overwrite cannot be combined with --resume: a resumed run continues in its folder")
    folder, cfg, differences = open_resume(args.resume, flags, force=args.force)
    if args.print_config:
        folder.close()
        print(json.dumps(cfg.to_dict(), indent=2))
        return None
    return resume_run(folder, cfg, differences, figures=when_complete, make_hooks=pause_hook_from_env)


def _new(args, flags: dict) -> dict | None:
    from deepdive.config.resolve import resolve_config
    from deepdive.storage.config_file import read_config_file
    from deepdive.training.ddp.launcher import restarted_run
    from deepdive.training.hooks import pause_hook_from_env
    from deepdive.training.resume import resume_run
    from deepdive.training.setup import run_training
    from deepdive.viz.run_figures import when_complete

    config_file = getattr(args, "config", None)
    cfg = resolve_config(flags, read_config_file(config_file) if config_file else None)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return None
    restarted = restarted_run(cfg, "out" in flags)  # a worker torchrun restarted continues its run folder
    if restarted:
        return resume_run(*restarted, figures=when_complete, make_hooks=pause_hook_from_env)
    return run_training(cfg, overwrite=args.overwrite, figures=when_complete, make_hooks=pause_hook_from_env)


def report_summary(summary: dict, as_json: bool) -> None:
    """The run's result: one line and its folder, or the summary as one JSON object."""
    if as_json:
        print(strict_json(summary))
        return
    if summary.get("already_completed"):
        print(f"{summary['run']} already completed {summary['epochs']} epoch(s): nothing to resume "
              f"(test accuracy {100 * summary['test_accuracy']:.2f}%)")
        return
    print(f"{summary['status']}: {summary['model']} on {summary['dataset']}, {summary['epochs']} epoch(s): "
          f"test accuracy {100 * summary['test_accuracy']:.2f}%, test loss {summary['test_loss']:.4f}, "
          f"{summary['images_per_second']:.0f} img/s on {summary['device']}")
    print(f"run folder: {summary['run']}")

