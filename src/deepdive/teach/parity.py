"""Parity report: the same model, weights, batches and dropout masks on PyTorch and on
deepdive.scratch, stepped together, compared after every step.

For each step: loss, every parameter's gradient, every parameter after the
optimizer step. Differences are reported as max |a − b| (abs) and
max |a − b| / max |b| (rel, per tensor, so near-zero elements do not blow it up).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepdive.config.specs import scratch_models

TOLERANCE = {"float64": 1e-6}  # max relative difference allowed per tensor
# float32: scratch's error against the float64 reference may be up to 4x torch float32's own error,
# and never fails below 1e-3 relative (a single ReLU whose input rounds to the other sign moves
# early-layer gradients by ~4e-4 relative: rounding, not a wrong formula).
FLOAT32_FACTOR, FLOAT32_FLOOR = 4.0, 1e-3


@dataclass
class StepDiff:
    step: int
    loss: tuple[float, float]
    grads: dict[str, tuple[float, float]] = field(default_factory=dict)
    params: dict[str, tuple[float, float]] = field(default_factory=dict)
    reference: dict[str, tuple[float, float]] = field(default_factory=dict)  # float32: (scratch, torch) rel errors

    def worst(self, table: dict) -> tuple[str, float, float]:
        name = max(table, key=lambda k: table[k][1])
        return name, table[name][0], table[name][1]

    @property
    def max_rel(self) -> float:
        return max([self.loss[1]] + [v[1] for v in self.grads.values()] + [v[1] for v in self.params.values()])


def _diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    abs_diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return abs_diff, abs_diff / scale if scale > 0 else abs_diff


class _MaskTape:
    """Dropout masks from a seeded generator: two tapes with one seed give both engines the same masks."""

    def __init__(self, seed: int, p: float):
        self.rng, self.p = np.random.default_rng(seed), p

    def __call__(self, shape) -> np.ndarray:
        return self.rng.random(tuple(shape)) >= self.p


def _share_torch_dropout(model, seed: int) -> None:
    import torch
    from torch import nn

    class TapeDropout(nn.Module):
        def __init__(self, p):
            super().__init__()
            self.p, self.tape = p, _MaskTape(seed, p)

        def forward(self, x):
            if not self.training or self.p == 0:
                return x
            mask = torch.from_numpy(self.tape(x.shape)).to(x.dtype)
            return x * (mask * (1.0 / (1.0 - self.p)))

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Dropout):
                setattr(module, name, TapeDropout(child.p))


def _share_scratch_dropout(model, seed: int) -> None:
    from deepdive.scratch.nn import Dropout

    for module in model.modules():
        if isinstance(module, Dropout):
            module.mask_source = _MaskTape(seed, module.p)


class _TorchSide:
    def __init__(self, model, optimizer, dtype):
        import torch
        self.torch, self.model, self.opt, self.dtype = torch, model, optimizer, dtype
        self.params = dict(model.named_parameters())

    def forward_backward(self, x, y) -> float:
        import torch.nn.functional as tF
        self.opt.zero_grad()
        loss = tF.cross_entropy(self.model(self.torch.from_numpy(x.astype(self.dtype))), self.torch.from_numpy(y))
        loss.backward()
        return loss.detach().numpy()

    def grads(self) -> dict:
        return {n: p.grad.numpy() for n, p in self.params.items()}

    def weights(self) -> dict:
        return {n: p.detach().numpy() for n, p in self.params.items()}


class _ScratchSide(_TorchSide):
    def __init__(self, model, optimizer, dtype):
        import deepdive.scratch as scratch
        self.scratch, self.model, self.opt, self.dtype = scratch, model, optimizer, dtype
        self.params = dict(model.named_parameters())

    def forward_backward(self, x, y) -> float:
        from deepdive.scratch.nn import functional as F
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(self.scratch.Tensor(x.astype(self.dtype))), y)
        loss.backward()
        return loss.data

    def grads(self) -> dict:
        return {n: p.grad for n, p in self.params.items()}

    def weights(self) -> dict:
        return {n: p.data for n, p in self.params.items()}


def run_parity(model_name: str = "simplenet", steps: int = 20, optimizer: str = "adam", dtype: str = "float64",
               lr: float | None = None, batch_size: int = 16, num_classes: int = 10, seed: int = 0,
               input_shape: tuple | None = None) -> list[StepDiff]:
    """Step both engines ``steps`` times on the same random batches; return each step's differences.

    In float32 a third model, torch in float64, steps alongside as the reference
    that both float32 engines are measured against (``StepDiff.reference``).
    """
    import torch
    import torch.nn.functional as tF

    import deepdive.scratch.nn as snn
    import deepdive.scratch.optim as soptim
    from deepdive.models.registry import build_model
    from deepdive.training.optim import build_optimizer

    np_dtype = np.float64 if dtype == "float64" else np.float32
    shape = tuple(input_shape or scratch_models()[model_name])
    from deepdive.config.names import DEFAULT_LR
    lr = lr if lr is not None else DEFAULT_LR[optimizer]  # the optimizer's own default, as `deepdive train`
    torch.manual_seed(seed)
    np.random.seed(seed)
    base = build_model(model_name, torch.nn, tF, shape, num_classes).double()

    def torch_side(np_type):
        model = build_model(model_name, torch.nn, tF, shape, num_classes).to(
            torch.float64 if np_type == np.float64 else torch.float32)
        model.load_state_dict(base.state_dict())
        _share_torch_dropout(model, seed)
        model.train()
        return _TorchSide(model, build_optimizer(optimizer, model.parameters(), lr), np_type)

    s_model = build_model(model_name, snn, snn.functional, shape, num_classes).to_dtype(np_dtype)
    s_model.load_state_dict(base.state_dict())  # the same weights: torch's init copied over
    _share_scratch_dropout(s_model, seed)
    s_model.train()
    scratch_side = _ScratchSide(s_model, build_optimizer(optimizer, s_model.parameters(), lr, optim=soptim), np_dtype)
    t_side = torch_side(np_dtype)
    reference = torch_side(np.float64) if np_dtype == np.float32 else None

    return _step_together(scratch_side, t_side, reference, steps, batch_size, shape, num_classes, np_dtype, seed)


def _step_together(scratch_side, t_side, reference, steps: int, batch_size: int, shape: tuple, num_classes: int,
                   np_dtype, seed: int) -> list[StepDiff]:
    """Every step: the same batch through each side, then loss, gradients and updated weights compared."""
    data = np.random.default_rng(seed + 1)
    report = []
    for step in range(1, steps + 1):
        x = data.standard_normal((batch_size,) + shape).astype(np_dtype)
        y = data.integers(0, num_classes, batch_size)
        sides = [scratch_side, t_side] + ([reference] if reference else [])
        losses = [side.forward_backward(x, y) for side in sides]
        diff = StepDiff(step, _diff(losses[0], losses[1]))
        grads = [side.grads() for side in sides]
        for name in t_side.params:
            diff.grads[name] = _diff(grads[0][name], grads[1][name])
        if reference:
            diff.reference["loss"] = (_diff(losses[0], losses[2])[1], _diff(losses[1], losses[2])[1])
            for name in t_side.params:
                diff.reference["grad " + name] = (_diff(grads[0][name], grads[2][name])[1],
                                                  _diff(grads[1][name], grads[2][name])[1])
        for side in sides:
            side.opt.step()
        weights = [side.weights() for side in sides]
        for name in t_side.params:
            diff.params[name] = _diff(weights[0][name], weights[1][name])
            if reference:
                diff.reference["param " + name] = (_diff(weights[0][name], weights[2][name])[1],
                                                   _diff(weights[1][name], weights[2][name])[1])
        report.append(diff)
    return report


def passes(report: list[StepDiff], dtype: str) -> tuple[bool, str]:
    """float64: every relative difference <= 1e-6. float32: scratch's error against the float64
    reference is at most max(4x torch float32's own error against it, 1e-3)."""
    if dtype == "float64":
        worst = max(d.max_rel for d in report)
        return worst <= TOLERANCE["float64"], f"worst relative difference {worst:.2e} (tolerance 1e-06)"
    worst_ratio, where = 0.0, ""
    for d in report:
        for name, (s_err, t_err) in d.reference.items():
            excess = s_err / max(FLOAT32_FACTOR * t_err, FLOAT32_FLOOR)
            if excess > worst_ratio:
                worst_ratio, where = excess, f"step {d.step} {name}: scratch {s_err:.2e} vs torch {t_err:.2e}"
    return worst_ratio <= 1.0, f"worst error against the float64 reference: {where} (ratio to allowance {worst_ratio:.2f})"


def format_report(report: list[StepDiff], model_name: str, optimizer: str, dtype: str) -> tuple[list[str], bool]:
    if dtype == "float64":
        rule = "every relative difference <= 1e-06"
    else:
        rule = (f"float32 rounding differs by design, so both float32 engines step beside a float64 torch reference; "
                f"scratch's relative error against it must be <= max({FLOAT32_FACTOR:g} x torch float32's, "
                f"{FLOAT32_FLOOR:g})")
    lines = [f"parity: {model_name}, {optimizer}, {dtype}, {len(report)} steps. Differences scratch vs torch: "
             "abs = max|a-b|, rel = max|a-b| / max|torch| per tensor. Tolerance: " + rule,
             f"{'step':>4}  {'loss abs':>9} {'loss rel':>9}  {'grad abs':>9} {'grad rel':>9} {'worst grad':<14}"
             f"  {'param abs':>9} {'param rel':>9} {'worst param':<14}"]
    for d in report:
        gname, gabs, grel = d.worst(d.grads)
        pname, pabs, prel = d.worst(d.params)
        lines.append(f"{d.step:4d}  {d.loss[0]:9.2e} {d.loss[1]:9.2e}  {gabs:9.2e} {grel:9.2e} {gname:<14}"
                     f"  {pabs:9.2e} {prel:9.2e} {pname:<14}")
    ok, detail = passes(report, dtype)
    lines.append(f"{'PASS' if ok else 'FAIL'} ({dtype}): {detail}")
    return lines, ok


def plot(report: list[StepDiff], out, title: str) -> None:
    """The relative difference scratch vs torch per step: the loss and every parameter, log scale."""
    import numpy as np

    from deepdive.storage.atomic import write_atomic
    from deepdive.viz.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    steps = [d.step for d in report]
    floor = 1e-18  # an exact 0 has no logarithm: drawn at the floor
    ax.plot(steps, [max(d.loss[1], floor) for d in report], color="black", linewidth=2, label="loss")
    for name in report[0].params:
        ax.plot(steps, [max(d.params[name][1], floor) for d in report], linewidth=1, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("relative difference |scratch − torch| / max|torch|")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    ax.set_xticks(np.unique(np.linspace(min(steps), max(steps), min(len(steps), 10)).round().astype(int)))
    fig.tight_layout()
    write_atomic(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
