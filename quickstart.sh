#!/usr/bin/env bash
# Set up deepdive in .venv, fetch CIFAR-10 into ./data, and run the article's experiment.
# Extra arguments go to `deepdive reproduce article`, e.g. --epochs 1 --limit-train 2000 --limit-test 2000
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1 -e '.[test]'
# Offline machines of this project carry a CIFAR-10 copy beside the checkout; elsewhere deepdive downloads it.
if [ ! -d data/cifar-10-batches-py ] && [ -f ../shared/data/make_cifar10.py ]; then
  .venv/bin/python ../shared/data/make_cifar10.py data
fi
exec .venv/bin/deepdive reproduce article --data-dir data "$@"
