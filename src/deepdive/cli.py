"""The ``deepdive`` command: the parser assembled from ``commands/`` (one module per subcommand), and dispatch.

No command's logic lives here. Exit codes: 0 done, 1 the run failed, 2 bad input or usage (one line on
stderr), 130/143 interrupted by SIGINT/SIGTERM.
"""
from __future__ import annotations

import importlib
import logging
import signal
import sys

from deepdive.commands.parser import Parser, quiet_flag
from deepdive.errors import Interrupted, RunFailed, UserError, WriteFailed
from deepdive.output import printable

log = logging.getLogger("deepdive")

# The subcommands, in the order --help lists them: each is the module deepdive.commands.<name>.
COMMANDS = ("train", "evaluate", "predict", "reproduce", "ladder", "parity", "rosenblatt", "optimizers", "graph",
            "report", "compare", "export", "claims", "list")


def _command(name: str):
    return importlib.import_module(f"deepdive.commands.{name}")


def build_parser() -> Parser:
    from deepdive.version import __version__

    parser = Parser(prog="deepdive", description="Train, evaluate and understand image classifiers "
                    "(the 'Deep Learning Deep Dive' article as software).")
    quiet_flag(parser, default=False)
    parser.add_argument("--version", action="version", version=f"deepdive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        module = _command(name)
        p = sub.add_parser(name, help=module.HELP)
        module.add_arguments(p)
        quiet_flag(p)  # -q after the subcommand too
    return parser


def _quiet(exc: BaseException) -> bool:
    """An error another process of a distributed run reports for all (training.ddp.group.quiet): said once, not N
    times."""
    return bool(getattr(exc, "quiet", False))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `train --nproc N` hands on to torchrun
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    # Only deepdive's own logger speaks at INFO: other libraries' INFO lines (torch's "FakeTensor cache
    # stats" at exit, when Ctrl-C interrupts its import before it configures its loggers) stay quiet.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        code = _command(args.command).run(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at interpreter exit
        return code
    except BrokenPipeError:  # `deepdive list | head -1`: the reader has all it wanted
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UserError as exc:
        for line in (str(exc).splitlines() or [""]) if not _quiet(exc) else []:
            print(f"deepdive {args.command}: error: {printable(line)}", file=sys.stderr)
        return 2
    except WriteFailed as exc:
        if args.command in ("train", "reproduce"):  # a run that started and could not finish
            if not _quiet(exc):
                print(f"deepdive {args.command}: run failed: {exc}", file=sys.stderr)
            return 1
        fix = ("choose another --out" if "out" in vars(args) else
               "free disk space or make the folder writable (or copy the run somewhere writable and use the copy)")
        print(printable(f"deepdive {args.command}: error: cannot write {exc.path} ({exc.reason}): {fix}"),
              file=sys.stderr)
        return 2
    except RunFailed as exc:
        if not _quiet(exc):
            print(f"deepdive {args.command}: run failed: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        if not _quiet(exc):
            print(f"deepdive {args.command}: interrupted; the run folder records status 'interrupted'",
                  file=sys.stderr)
        return 143 if exc.signum == signal.SIGTERM else 130
    except KeyboardInterrupt:
        print(f"deepdive {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the OS refuses (too long, not a folder, ...): bad input, not a crash
        where = f" {exc.filename!r}" if exc.filename else ""
        print(printable(f"deepdive {args.command}: error: cannot use{where}: {exc.strerror or exc}; "
                         "check the paths given"), file=sys.stderr)
        return 2



if __name__ == "__main__":
    raise SystemExit(main())
