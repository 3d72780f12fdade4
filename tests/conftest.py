import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import deepdive.viz.run_figures
from deepdive.cli import main

ORIGINAL_FIGURES = deepdive.viz.run_figures.when_complete

ROOT = Path(__file__).resolve().parents[1]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# Small, fast synthetic runs: 1x8x8 images, 4 classes.
SYNTH = ["--dataset", "synthetic", "--synthetic-shape", "1,8,8", "--synthetic-classes", "4"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Tests never touch the user's ~/.cache/deepdive."""
    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path_factory.getbasetemp() / "deepdive-cache"))


@pytest.fixture(autouse=True)
def no_run_figures(monkeypatch):
    """The suite's hundreds of tiny in-process runs draw no end-of-run figures: the drawer the commands hand to
    the loop (``viz.run_figures.when_complete``) is replaced by one that draws nothing (the tests of the
    figures ask for ``figures_on``); child processes get ``--no-figures`` (``run_subprocess``)."""
    import deepdive.viz.run_figures as run_figures
    monkeypatch.setattr(run_figures, "when_complete", lambda *args, **kwargs: None)


@pytest.fixture
def figures_on(monkeypatch):
    """The real end-of-run figures, for the tests of them."""
    import deepdive.viz.run_figures as run_figures
    monkeypatch.setattr(run_figures, "when_complete", ORIGINAL_FIGURES)


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch):
    """In-process runs skip the tenth of a second that measuring busy cores takes (hundreds of runs here);
    the thread tests patch it themselves, and the measurement has its own test."""
    import deepdive.training.threads as threads
    monkeypatch.setattr(threads, "busy_cores", lambda *a, **k: 0)


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """Run the deepdive CLI in-process; returns exit code, stdout and stderr."""
    def run(*args):
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)
    return run


def run_subprocess(*args, timeout=300, **kwargs):
    """Run ``python -m deepdive`` in a child process (for exit codes, signals and tracebacks); a ``train``
    draws no figures there (``--no-figures``), as in-process runs draw none (``no_run_figures``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args and args[0] == "train" and "--no-figures" not in args:
        args = ("train", "--no-figures", *args[1:])
    return subprocess.run([sys.executable, "-m", "deepdive", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def assert_one_line_error(result, *fragments):
    """Exit 2, exactly one line on stderr naming the problem, no traceback."""
    code = getattr(result, "code", getattr(result, "returncode", None))
    err = getattr(result, "err", getattr(result, "stderr", ""))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    error_lines = [line for line in lines if "error" in line]
    assert len(error_lines) == 1, err
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]
