#!/usr/bin/env bash
# One prepared GPU check, for a machine with PyTorch and a CUDA GPU but no network.
# Beforehand, copy the shared tarball into the checkout's ignored data folder:
#     cp ../shared/data/cifar10-jpeg.tar.gz data/
# Then:  bash bench/gpu_check.sh      (finishes within 5 minutes on one H100)
# Prints: the CIFAR-10 94% run (mean/spread over 10 seeds, CUDA-event timed) and the 95% run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export DEEPDIVE_CACHE="$PWD/data/.cache"
tarball=data/cifar10-jpeg.tar.gz
[ -f "$tarball" ] || { echo "gpu_check: put cifar10-jpeg.tar.gz in data/ first (cp ../shared/data/cifar10-jpeg.tar.gz data/)" >&2; exit 2; }
[ -d data/cifar10-jpeg ] || tar xzf "$tarball" -C data
python - <<'PY'
import torch
print(f"torch {torch.__version__}, {torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO GPU'}")
PY
# 94% target: the fast recipe's GPU preset, 10 seeds after a warm-up run
timeout 170 python bench/time_to_accuracy.py --gpu --dataset imagefolder --data-dir data/cifar10-jpeg --seeds 10 \
  | tail -n 1 | sed 's/^/gpu94 /'
# 95% target: wider and longer, 3 seeds
timeout 110 python bench/time_to_accuracy.py --gpu --dataset imagefolder --data-dir data/cifar10-jpeg --seeds 3 \
  --fast-args "--epochs 25 --widths 128,384,384" | tail -n 1 | sed 's/^/gpu95 /'
