"""What the run-level benchmarks share: one ``deepdive train`` command in a child process, printed as it runs."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def train(args: list[str], benchmark: str) -> dict:
    """``deepdive train ARGS --json --no-figures`` from this source tree; its summary, or exit naming ``benchmark``."""
    command = [sys.executable, "-m", "deepdive", "train", *args, "--json", "--no-figures"]
    print("$ deepdive " + shlex.join(command[3:]), file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    if done.returncode != 0:
        sys.exit(f"{benchmark} benchmark: a run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)
