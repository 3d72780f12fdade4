"""The long fuzz run: every reader of an outside file, N seeded mutations each (tests/fuzz_readers.py).

    python scripts/fuzz.py [--cases 2000] [--seed 0] [--readers cifar,idx,...]

Prints, per reader: cases tried, clean loads, clean one-line errors, failures (tracebacks or memory
above the ceiling: each printed with its mutation, so it can be replayed), the largest traced memory
of a case, and the time taken; then the process's peak resident memory. Exit 1 when any case failed.
The short version of the same harness runs in CI (tests/test_fuzz.py, hypothesis).
"""
from __future__ import annotations

import argparse
import logging
import random
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_readers import KINDS, READERS, mutate, run_case  # noqa: E402


def draw_ops(rng: random.Random) -> list[tuple[str, int, int]]:
    return [(rng.choice(KINDS), rng.randrange(1 << 16), rng.randrange(256)) for _ in range(rng.randint(1, 4))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="mutations per reader")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--readers", default=",".join(READERS), help="comma-separated, of: " + ", ".join(READERS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # readers' warnings (skipped files, md5) are outcomes, not output
    failures = 0
    print(f"{'reader':<12} {'cases':>6} {'loads':>6} {'errors':>6} {'failed':>6} {'peak traced':>12} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.readers.split(","):
            reader = READERS[name]
            work = Path(tmp) / name
            work.mkdir()
            seed = reader.seed(work)
            reader.read(reader.place(work, seed))
            rng = random.Random(f"{args.seed}-{name}")
            counts = {"load": 0, "error": 0, "failed": 0}
            peak, start = 0, time.perf_counter()
            for _ in range(args.cases):
                ops = draw_ops(rng)
                try:
                    outcome, traced = run_case(reader, work, mutate(seed, ops, reader.structured))
                    counts[outcome] += 1
                    peak = max(peak, traced)
                except Exception:  # noqa: BLE001 - a failure of the reader is what this script looks for
                    counts["failed"] += 1
                    if counts["failed"] <= 3:
                        last = traceback.format_exc().strip().splitlines()[-1]
                        print(f"  FAILED {name} ops={ops}: {last}", file=sys.stderr)
            failures += counts["failed"]
            print(f"{name:<12} {args.cases:>6} {counts['load']:>6} {counts['error']:>6} {counts['failed']:>6} "
                  f"{peak / 1e6:>9.1f} MB {time.perf_counter() - start:>8.1f}")
    print(f"peak resident memory of the whole run: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
