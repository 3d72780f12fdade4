"""Numerical gradient checking: central finite differences in float64 over every element.

    ∂f/∂xᵢ ≈ (f(x + h eᵢ) − f(x − h eᵢ)) / 2h      (error O(h²))

compared with what backpropagation computed. The report names the worst
element, so a wrong backward formula points at itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepdive.scratch.tensor import Tensor


@dataclass
class GradcheckReport:
    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst_input: int
    worst_index: tuple
    analytic: float
    numeric: float

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (f"gradcheck {verdict}: max abs error {self.max_abs_error:.3e}, max rel error "
                f"{self.max_rel_error:.3e}; worst at input {self.worst_input} index {self.worst_index}: "
                f"backprop {self.analytic:.10g} vs finite difference {self.numeric:.10g}")


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-7, rtol: float = 1e-5) -> GradcheckReport:
    """Check ``fn(*inputs)`` (a scalar or any-shaped output, reduced by a fixed random projection).

    ``inputs`` are arrays or Tensors; each is taken in float64. Returns a
    report; ``report.ok`` is True when every element satisfies
    |analytic − numeric| <= atol + rtol·|numeric|.
    """
    arrays = [np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64) for x in inputs]
    probe = None

    def scalar(values) -> tuple[float, list[Tensor]]:
        nonlocal probe
        tensors = [Tensor(v, requires_grad=True) for v in values]
        out = fn(*tensors)
        if probe is None:
            probe = np.random.default_rng(0).standard_normal(out.shape)
        return (out * probe).sum(), tensors

    loss, tensors = scalar(arrays)
    loss.backward()
    analytic = [t.grad if t.grad is not None else np.zeros_like(t.data) for t in tensors]

    worst = (0.0, 0.0, 0, (), 0.0, 0.0)  # (score, abs, input, index, analytic, numeric)
    max_abs = max_rel = 0.0
    ok = True
    for k, base in enumerate(arrays):
        for index in np.ndindex(base.shape):
            values = [a.copy() for a in arrays]
            values[k][index] = base[index] + eps
            plus = scalar(values)[0].item()
            values[k][index] = base[index] - eps
            minus = scalar(values)[0].item()
            numeric = (plus - minus) / (2 * eps)
            got = float(analytic[k][index])
            err = abs(got - numeric)
            rel = err / max(abs(numeric), 1e-12)
            max_abs, max_rel = max(max_abs, err), max(max_rel, rel if abs(numeric) > atol else 0.0)
            score = err / (atol + rtol * abs(numeric))
            ok = ok and score <= 1.0
            if score > worst[0] or worst[2:4] == (0, ()):
                worst = (score, err, k, index, got, numeric)
    return GradcheckReport(ok, max_abs, max_rel, worst[2], worst[3], worst[4], worst[5])
