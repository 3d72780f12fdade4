"""The two ways a command can fail, mapped to exit codes by the CLI.

``UserError`` is bad input or usage: the CLI prints its message as one line on
stderr and exits 2. ``RunFailed`` is a run that started and could not finish
(diverged, disk full): exit 1.
"""


class UserError(Exception):
    """Bad input: the message names the problem and the fix (exit 2)."""


class RunFailed(Exception):
    """A run that began and failed (exit 1)."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; ``signum`` picks the exit code (130 or 143)."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
