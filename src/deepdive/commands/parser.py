"""The argument parser every subcommand shares, and the small argument types they use."""
from __future__ import annotations

import argparse
import re
import sys

from deepdive.config.names import did_you_mean


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit 2) instead of usage + error, a "did you mean …?" for
    unknown names and flags, and no silent abbreviations (``--opt`` is a declared alias, not a prefix)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message}{self._suggestion(message)} (see {self.prog} --help)\n")
        raise SystemExit(2)

    def _suggestion(self, message: str) -> str:
        choice = re.search(r"invalid choice: '?([^' ]+)'? \(choose from (.*)\)", message)
        if choice:
            return did_you_mean(choice.group(1), [c.strip(" '") for c in choice.group(2).split(",")])
        unknown = re.search(r"unrecognized arguments: (.*)", message)
        if unknown:
            flags = [t.split("=")[0] for t in unknown.group(1).split() if t.startswith("--")]
            return did_you_mean(flags[0], self._all_flags()) if flags else ""
        return ""

    def _all_flags(self) -> list[str]:
        flags = []
        for action in self._actions:
            flags += action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags += [f for a in sub._actions for f in a.option_strings]
        return [f for f in flags if f.startswith("--")]


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be integers separated by commas, e.g. 64,256,256") from None
    return values


def shape(text: str) -> list[int]:
    values = int_list(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} must be three integers C,H,W, e.g. 3,32,32")
    return values


def names(text: str) -> list:
    return [v.strip() for v in text.split(",") if v.strip()]


def quiet_flag(p: argparse.ArgumentParser, default=argparse.SUPPRESS) -> None:
    p.add_argument("-q", "--quiet", action="store_true", default=default, help="only warnings and errors on stderr")

