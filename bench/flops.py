"""FLOP counting and the machine's matmul peak, for model-FLOP utilisation (MFU).

MFU = (training FLOPs per image × images per second) / (measured matmul FLOP/s):
how much of what this machine's BLAS can do the training loop actually uses. The
peak is measured in the precision the training computes in: fp32, or bf16 for
``--amp`` runs (on a CPU with native bf16 its matmul peak is about twice fp32's).
"""
from __future__ import annotations

import time


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


def training_flops_per_image(model, input_shape, num_classes: int = 10) -> float:
    """Forward + backward FLOPs of one training step, per image (torch's FlopCounterMode)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.randn(8, *input_shape, device=device)
    y = torch.randint(0, num_classes, (8,), device=device)
    was_training = model.training
    model.train()
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / 8
