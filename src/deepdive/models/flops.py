"""Counted FLOPs of a model per image: one training step (forward + backward) and one forward pass.

torch's ``FlopCounterMode`` counts the multiply-adds of every matrix product and convolution the
dispatcher sees (2 FLOPs each); elementwise work (activations, normalization, the optimizer) is not
counted, so the figure is the arithmetic the hardware's matrix units must do. The ladder
(``deepdive ladder``) and ``bench/time_to_accuracy.py`` report it.
"""
from __future__ import annotations


def training_flops_per_image(model, input_shape, num_classes: int = 10, batch: int = 8) -> float:
    """Forward + backward FLOPs of one training step, per image; the model's gradients are cleared after."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.randn(batch, *input_shape, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    was_training = model.training
    model.train()
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / batch


def forward_flops_per_image(model, input_shape, batch: int = 8) -> float:
    """FLOPs of one forward pass (eval mode), per image: one view of a test image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(batch, *input_shape, device=device))
    model.train(was_training)
    return counter.get_total_flops() / batch
