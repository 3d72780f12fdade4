#!/usr/bin/env bash
# The four breakages of issue 9, applied one at a time to a copy of src/: each must make the suite fail.
#   scripts/breakages.sh [PYTEST ARGS]      (default: the wiring, fast-training and failure tests)
set -uo pipefail
cd "$(dirname "$0")/.."
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(tests/test_wiring.py tests/test_fast.py tests/test_failures.py -x -q)
declare -A breakage=(
  [clip-noop]='s/return float(self.torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))/return 0.0/|src/deepdive/training/engines.py'
  [all-adam]='s/^    if name == "sgd":/    name = "adam"\n    if name == "sgd":/|src/deepdive/training/optim.py'
  [no-decoupled-wd]='s/^        if wd:$/        if False:/|src/deepdive/training/optim.py'
  [no-smoothing]='s/label_smoothing=self.cfg.label_smoothing/label_smoothing=0.0/|src/deepdive/training/loop.py'
)
status=0
for name in clip-noop all-adam no-decoupled-wd no-smoothing; do
  copy=$(mktemp -d); cp -r src "$copy/"
  IFS='|' read -r expr file <<<"${breakage[$name]}"
  sed -i "$expr" "$copy/$file"
  if cmp -s "src/${file#src/}" "$copy/$file"; then echo "$name: the patch did not apply"; status=1; continue; fi
  if PYTHONPATH="$copy/src" .venv/bin/python -m pytest "${args[@]}" -p no:cacheprovider >"$copy/log" 2>&1; then
    echo "$name: NOT caught (the tests passed)"; status=1
  else
    echo "$name: caught by $(grep -m1 -o 'FAILED [^ ]*' "$copy/log" || echo 'a failing test')"
  fi
  rm -rf "$copy"
done
exit $status
