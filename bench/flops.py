"""FLOP counting and the machine's matmul peak, for model-FLOP utilisation (MFU).

MFU = (training FLOPs per image × images per second) / (measured matmul FLOP/s):
how much of what this machine's BLAS can do the training loop actually uses. The
peak is measured in the precision the training computes in: fp32, or bf16 for
``--amp`` runs (on a CPU with native bf16 its matmul peak is about twice fp32's).
"""
from __future__ import annotations

import time

from deepdive.models.flops import training_flops_per_image  # noqa: F401 - bench/time_to_accuracy.py takes it from here


def matmul_flops_per_second(n: int = 2048, repeats: int = 10, device: str = "cpu", dtype=None) -> float:
    import torch

    dtype = dtype or torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)
