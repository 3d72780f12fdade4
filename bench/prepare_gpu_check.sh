#!/usr/bin/env bash
# Prepare bench/gpu_check.sh for a machine that reaches no registry: run here, once, then carry data/ and vendor/.
#   bash bench/prepare_gpu_check.sh        (needs ../shared/data and pip's access to PyPI)
# data/cifar10-jpeg.tar.gz + data/make_cifar10.py: the CIFAR-10 copy and the script that builds the pickled batches;
# vendor/airbench/: the airbench package's source (PyPI), importable through PYTHONPATH, as published.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data vendor
cp ../shared/data/cifar10-jpeg.tar.gz ../shared/data/make_cifar10.py data/
tmp=$(mktemp -d)
.venv/bin/pip download -q --no-deps --no-binary :all: "airbench==0.1.8" -d "$tmp"
tar xzf "$tmp"/airbench-*.tar.gz -C "$tmp"
rm -rf vendor/airbench && cp -r "$tmp"/airbench-*/airbench vendor/airbench
rm -rf "$tmp"
echo "prepared: data/cifar10-jpeg.tar.gz, data/make_cifar10.py, vendor/airbench (carry data and vendor)"
