#!/usr/bin/env bash
# The training core on a GPU, quickly: train, interrupt at a chosen step, resume, evaluate, on CUDA;
# then the 94% preset over 3 seeds for comparison with bench/gpu_check.sh's figures.
#   bash bench/gpu_smoke.sh            (DEVICE=cpu to try it here; SEEDS=0 skips the CIFAR-10 part)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export DEEPDIVE_CACHE="$PWD/data/.cache"
device="${DEVICE:-cuda}" seeds="${SEEDS:-3}" tmp=$(mktemp -d)
py=$(command -v python3)
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
args=(train --recipe fast --dataset synthetic --synthetic-shape 3,16,16 --synthetic-classes 4 --widths 8,16,16
      --epochs 4 -b 128 --device "$device")
python3 -m deepdive "${args[@]}" --out "$tmp/ref" --json > "$tmp/ref.json"
DEEPDIVE_PAUSE_AT=step:20 DEEPDIVE_PAUSE_FILE="$tmp/paused" python3 -m deepdive "${args[@]}" --out "$tmp/cut" &
pid=$!
while [ ! -f "$tmp/paused" ]; do sleep 0.1; done
kill -INT $pid; wait $pid && echo "smoke: expected exit 130" || echo "smoke: interrupted (exit $?)"
python3 -m deepdive train --resume "$tmp/cut" --json > "$tmp/cut.json"
python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
ref, cut = (json.load(open(f"{tmp}/{n}.json")) for n in ("ref", "cut"))
same = open(f"{tmp}/ref/model.safetensors", "rb").read() == open(f"{tmp}/cut/model.safetensors", "rb").read()
print(f"smoke: {ref['device']}: reference {ref['test_accuracy']:.4f}, interrupted+resumed {cut['test_accuracy']:.4f},"
      f" weights bit-identical: {same}")
PY
python3 -m deepdive evaluate "$tmp/cut" --device "$device" --json
if [ "$seeds" -gt 0 ] && [ "$device" = cuda ]; then
  [ -d data/cifar10-jpeg ] || tar xzf data/cifar10-jpeg.tar.gz -C data
  "$py" bench/time_to_accuracy.py --gpu --dataset imagefolder --data-dir data/cifar10-jpeg --seeds "$seeds" | tail -n 1
fi
rm -rf "$tmp"
