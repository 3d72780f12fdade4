"""Layers whose randomness or statistics span the global batch, not one process's share of it.

A data-parallel run turns the model's nn.Dropout into ``GlobalBatchDropout`` and, with --sync-bn, its
BatchNorm into the synchronised form (``global_batch_layers``). The dropout layers read the current
step's rows from a ``GlobalBatch`` the process group holds and sets while the model runs; outside a
training step (evaluation, even in train mode) they are plain dropout. Imported by the process group
only, under torchrun.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class GlobalBatch:
    """The training step's global batch as the layers of one process see it: (images in the global batch, this
    process's first row) while the model runs a training step, None otherwise."""

    def __init__(self) -> None:
        self.rows: tuple[int, int] | None = None

    @contextlib.contextmanager
    def step(self, offset: int, total: int):
        self.rows = (total, offset)
        try:
            yield
        finally:
            self.rows = None


class GlobalBatchDropout(nn.Dropout):
    """nn.Dropout whose mask is drawn for the global batch, this process keeping its own rows.

    On the CPU ``F.dropout`` draws ``empty_like(x).bernoulli_(1 − p)``; drawing that for the n images of
    the global batch and taking rows [offset, offset + n_r) gives each image the mask one process would
    give it, and leaves the generator where one process leaves it. On CUDA the mask is that of the fused
    kernel on the global batch's shape. Outside a training step (evaluation in train mode) it is plain
    dropout. ``global_batch`` is the ``GlobalBatch`` its process sets (``global_batch_layers`` gives it)."""

    global_batch: GlobalBatch | None = None

    def __init__(self, p: float = 0.5, inplace: bool = False, global_batch: GlobalBatch | None = None):
        super().__init__(p, inplace)
        self.global_batch = global_batch

    def forward(self, x):
        share = self.global_batch.rows if self.global_batch is not None else None
        if not self.training or share is None or not 0 < self.p < 1 or x.dim() == 0:
            return super().forward(x)
        total, offset = share
        n = x.shape[0]
        shape = (total, *x.shape[1:])
        if x.device.type == "cuda":
            keep = torch.native_dropout(torch.ones(shape, dtype=x.dtype, device=x.device), self.p, True)[1]
            return x * keep[offset:offset + n].to(x.dtype) * (1.0 / (1 - self.p))
        noise = torch.empty(shape, dtype=x.dtype, device=x.device)
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            noise = noise.contiguous(memory_format=torch.channels_last)
        noise.bernoulli_(1 - self.p)
        noise.div_(1 - self.p)
        return x * noise[offset:offset + n]


class SyncNorm(torch.autograd.Function):
    """Batch normalization over the global batch: mean and variance from sums all-reduced over processes.

    forward:  μ = Σx/N, σ² = Σx²/N − μ² (N: all processes' values per channel), x̂ = (x − μ)/√(σ² + ε)
    backward: ∂x = γ/√(σ² + ε) · (∂y − Σ∂y/N − x̂ · Σ(∂y·x̂)/N), the sums over all processes;
    γ's and β's gradients stay local (Σ∂y·x̂, Σ∂y): DDP averages them with every other gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum):
        import torch.distributed as tdist

        dims = [0, *range(2, x.dim())]
        xf = x.float()
        count = xf.numel() // xf.shape[1]
        stats = torch.cat([xf.sum(dims).double(), (xf * xf).sum(dims).double(),
                           torch.tensor([float(count)], dtype=torch.float64, device=x.device)])
        tdist.all_reduce(stats)
        c = xf.shape[1]
        total = stats[-1]
        mean = stats[:c] / total
        var = (stats[c:2 * c] / total - mean * mean).clamp_min(0)
        if running_mean is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
                unbiased = var * total / (total - 1).clamp_min(1)
                running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
        view = [1, c] + [1] * (x.dim() - 2)
        invstd = (var + eps).rsqrt().float().view(view)
        xhat = (xf - mean.float().view(view)) * invstd
        y = xhat if weight is None else xhat * weight.float().view(view) + bias.float().view(view)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.total = float(total)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        import torch.distributed as tdist

        xhat, invstd, weight = ctx.saved_tensors
        dims = [0, *range(2, xhat.dim())]
        dyf = dy.float()
        sum_dy, sum_dy_xhat = dyf.sum(dims), (dyf * xhat).sum(dims)
        both = torch.cat([sum_dy, sum_dy_xhat]).double()
        tdist.all_reduce(both)
        c = xhat.shape[1]
        view = [1, c] + [1] * (xhat.dim() - 2)
        g_dy, g_dy_xhat = (both[:c] / ctx.total).float().view(view), (both[c:] / ctx.total).float().view(view)
        scale = invstd if weight is None else invstd * weight.float().view(view)
        dx = (scale * (dyf - g_dy - xhat * g_dy_xhat)).to(dy.dtype)
        if weight is None:
            return dx, None, None, None, None, None, None
        return dx, sum_dy_xhat.to(weight.dtype), sum_dy.to(weight.dtype), None, None, None, None


class CpuSyncBatchNorm(_BatchNorm):
    """--sync-bn on the CPU (torch's SyncBatchNorm runs on GPUs only): training-mode statistics of the
    global batch via ``SyncNorm``; evaluation, and a single process, as plain BatchNorm."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, x):
        import torch.distributed as tdist

        if not (self.training and tdist.is_initialized() and tdist.get_world_size() > 1):
            return super().forward(x)
        momentum = self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        return SyncNorm.apply(x, self.weight, self.bias, self.running_mean if self.track_running_stats else None,
                              self.running_var if self.track_running_stats else None, self.eps,
                              momentum if momentum is not None else 0.0)


def global_batch_layers(model, sync_bn: bool, device_type: str, batch: GlobalBatch):
    """Turn nn.Dropout into ``GlobalBatchDropout`` reading ``batch`` and (``sync_bn``) BatchNorm into its
    synchronised form, by changing the layers' class in place: the same objects with the same parameters and
    buffers, so the optimizer, the EMA's copy, --freeze-backbone's list of norms and the state_dict keys are
    unchanged."""
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = GlobalBatchDropout
            module.global_batch = batch
        elif sync_bn and isinstance(module, _BatchNorm) and not isinstance(
                module, (nn.SyncBatchNorm, CpuSyncBatchNorm)):
            module.__class__ = nn.SyncBatchNorm if device_type == "cuda" else CpuSyncBatchNorm
            module.process_group = None  # SyncBatchNorm's: the whole world
    return model
