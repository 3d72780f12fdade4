#!/usr/bin/env bash
# Mutation testing of the training core (outside CI): mutmut mutates the modules named in
# pyproject.toml's [tool.mutmut] and runs, for each mutant, only the tests that execute it.
#   scripts/mutation.sh [MAX_SECONDS]             (default 3600; the 2,702 mutants of the training core take
#                                                  3-4 hours on 2 cores: more than one session)
#   scripts/mutation.sh --continue [MAX_SECONDS]  the same run, on from where it stopped: mutants/ is kept,
#                                                  results already there stand (the source must be unchanged)
# Needs `pip install -e '.[dev]'`. Prints mutmut's counts; `mutmut results` lists the survivors.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--continue" ]; then
  shift
  [ -d mutants ] || { echo "mutation: no mutants/ to continue: start a run without --continue" >&2; exit 2; }
else
  rm -rf mutants
fi
limit="${1:-3600}"
start=$(date +%s)
timeout "$limit" nice -n 19 .venv/bin/mutmut run --max-children "$(nproc)" || echo "mutation: stopped after ${limit}s (partial results)"
echo "mutation: $(( $(date +%s) - start )) s"
.venv/bin/mutmut results --all true 2>/dev/null | awk '{print $NF}' | sort | uniq -c || .venv/bin/mutmut results
