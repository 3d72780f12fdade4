#!/usr/bin/env bash
# The prepared GPU check: at most 8 minutes on one H100, for a machine with PyTorch and CUDA but no network.
#   here, once:  bash bench/prepare_gpu_check.sh     (data/cifar10-jpeg.tar.gz, data/make_cifar10.py, vendor/airbench)
#   there:       bash bench/gpu_check.sh             (the device tool: carry those three paths, and runs/ladder-full
#                                                     if an earlier check left one: the ladder continues it)
# Steps, each under its own time limit so that one slow step cannot take the others' time:
#   1. airbench94 as published (PyPI airbench, its own train94, fp16, CUDA events), 10 seeds after its warm-up
#   2. deepdive's GPU preset (batch 1024, 64/256/256, 10 epochs) on the same data and GPU, 10 seeds after a warm-up,
#      CUDA-event timed from the first step to the final evaluation with TTA; the warm-up (compile) time apart
#   3. deepdive ladder --scale full --device cuda, 3 seeds (resumable: whatever is done comes back in OUT)
#   4. the 95% preset (25 epochs, 128/384/384), 3 seeds
# Files in $OUT (or GPU_CHECK_OUT): each step's NAME.out (its stdout, a JSON line last) and NAME.log (stderr),
# airbench94.json, ladder-full/ (ladder.json, staircase.png, ladder.html, the run folders); the lines on stdout too.
# Tiny, on the CPU (tests/test_gpu_check.py): GPU_CHECK_TINY=1 GPU_CHECK_DATA=DIR (holding cifar-10-batches-py/).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:$PWD/vendor${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
data="${GPU_CHECK_DATA:-$PWD/data}"
out="${GPU_CHECK_OUT:-${OUT:-$PWD/runs/gpu-check}}"
mkdir -p "$out"
export DEEPDIVE_CACHE="$data/.cache"
if [ -n "${GPU_CHECK_TINY:-}" ]; then
  device=cpu
  airbench=(--seeds 0 --airbench-epochs 1 --limit-test 100)
  preset=(--seeds 1 --fast-args "--epochs 1 --limit-train 300 --limit-test 100")
  wider=(--seeds 1 --fast-args "--epochs 1 --widths 16,32,32 --limit-train 300 --limit-test 100")
  ladder=(--scale tiny --seeds 0 --rungs 9-10)
  limits=(60 60 60 60)
else
  device=cuda
  airbench=(--seeds 0-9)
  preset=(--seeds 10)
  wider=(--seeds 3 --fast-args "--epochs 25 --widths 128,384,384")
  ladder=(--scale full --seeds 0-2)
  limits=(100 130 120 80)
fi
if [ ! -d "$data/cifar-10-batches-py" ]; then
  if [ ! -f "$data/cifar10-jpeg.tar.gz" ] || [ ! -f "$data/make_cifar10.py" ]; then
    echo "gpu_check: $data lacks cifar10-jpeg.tar.gz and make_cifar10.py: run bench/prepare_gpu_check.sh first" >&2
    exit 2
  fi
  python "$data/make_cifar10.py" "$data" >/dev/null
fi
python -c "import torch; print('gpu_check: torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
step() {  # step NAME SECONDS COMMAND...: the command's output, labelled; a step over its time says so and the next runs
  local name=$1 seconds=$2
  shift 2
  timeout "$seconds" "$@" 2>"$out/$name.log" | tee "$out/$name.out" | sed "s/^/$name: /"
  local code=${PIPESTATUS[0]}
  [ "$code" -eq 0 ] || echo "$name: stopped with exit $code after at most ${seconds}s (see $out/$name.log)"
}
step airbench94 "${limits[0]}" python bench/vs_airbench_cpu.py --device "$device" --only airbench --data-dir "$data" \
  --json-out "$out/airbench94.json" "${airbench[@]}"
step gpu94 "${limits[1]}" python bench/time_to_accuracy.py --gpu --device "$device" --dataset cifar10 --data-dir "$data" \
  "${preset[@]}"
[ -d runs/ladder-full ] && [ ! -d "$out/ladder-full" ] && cp -r runs/ladder-full "$out/ladder-full"
step ladder "${limits[2]}" python -m deepdive ladder --device "$device" --data-dir "$data" --out "$out/ladder-full" \
  "${ladder[@]}"
step gpu95 "${limits[3]}" python bench/time_to_accuracy.py --gpu --device "$device" --dataset cifar10 --data-dir "$data" \
  "${wider[@]}"
echo "gpu_check: done; files in $out"
