"""Claims 10 and 11: backpropagation's cost, and any differentiable function as a layer.

Claim 10. A chain of n "diamonds" - x → a = σ(x), b = tanh(x) → x' = a + b
- has 2ⁿ paths from the input to the output. The chain rule written as a sum
over paths (each path's product of local derivatives) enumerates all of them;
backpropagation computes ∂L/∂x at each node once, from the gradients of its
consumers, and reuses it (dynamic programming), so the number of backward
operations is the number of operations in the graph: 3 per diamond. Both are
computed here: the engine's own ``backward()`` with every recorded
operation's backward call counted, and the explicit sum over all 2ⁿ paths.
They agree; their costs do not.

Claim 11. The scratch engine's ``Function`` takes a forward and a backward;
anything written that way is a layer. Softplus, log(1 + eˣ), with derivative
σ(x), is written here as a user would, checked by finite differences
(``scratch.gradcheck``) alone and inside a network, and trained. A variant with
a wrong derivative is checked too: gradcheck must catch it.
"""
from __future__ import annotations

import numpy as np

from deepdive.claims import FAILS, HOLDS, Result


class _Counted:
    """Stands in for an operation class in a recorded node: counts its backward calls, then runs it."""

    def __init__(self, fn, counts: dict):
        self.fn, self.counts = fn, counts

    def backward(self, ctx, grad):
        self.counts[self.fn.__name__] = self.counts.get(self.fn.__name__, 0) + 1
        return self.fn.backward(ctx, grad)


def count_backward_calls(root) -> dict:
    """Wrap every operation recorded under ``root`` so that ``root.backward()`` counts its backward calls."""
    counts, seen, stack = {}, set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in seen or node._node is None:
            continue
        seen.add(id(node))
        fn, ctx, inputs = node._node
        node._node = (_Counted(fn, counts), ctx, inputs)
        stack += [x for x in inputs if hasattr(x, "_node")]
    return counts


def diamonds(n: int, x0: float = 0.3):
    """The chain of n diamonds on the scratch engine: (input, output, the inputs of each diamond)."""
    from deepdive.scratch import Tensor

    x = start = Tensor(np.array(x0), requires_grad=True)
    values = []
    for _ in range(n):
        values.append(float(x.data))
        x = x.sigmoid() + x.tanh()
    return start, x, np.array(values)


def sum_over_paths(values: np.ndarray) -> tuple[float, int]:
    """∂x_n/∂x_0 as the sum over all 2ⁿ paths of the product of local derivatives; and the multiplications."""
    s = 1 / (1 + np.exp(-values))
    local = np.stack([s * (1 - s), 1 - np.tanh(values) ** 2], axis=1)  # (n, 2): via σ, via tanh (then + : 1)
    n = len(values)
    choices = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1  # one row per path: which branch at each diamond
    products = local[np.arange(n), choices].prod(axis=1)
    return float(products.sum()), (2 ** n) * max(n - 1, 0)


def backprop_linear(fast: bool = False, seed: int = 0) -> Result:
    sizes, enumerated = ((1, 2, 4, 8), 8) if fast else ((1, 2, 4, 8, 12, 16, 32, 64), 16)
    rows = []
    for n in sizes:
        start, out, values = diamonds(n)
        counts = count_backward_calls(out)
        out.backward()
        row = {"diamonds": n, "paths": 2 ** n, "backward_calls": sum(counts.values()),
               "gradient_backprop": float(start.grad), "path_sum_multiplications": None, "gradient_path_sum": None,
               "relative_difference": None}
        if n <= enumerated:  # beyond, the paths are too many to enumerate: that is the point
            by_paths, multiplications = sum_over_paths(values)
            row.update(path_sum_multiplications=multiplications, gradient_path_sum=by_paths,
                       relative_difference=abs(float(start.grad) - by_paths) / abs(by_paths))
        rows.append(row)
    linear = all(r["backward_calls"] == 3 * r["diamonds"] for r in rows)
    checked = [r for r in rows if r["gradient_path_sum"] is not None]
    agree = max(r["relative_difference"] for r in checked) <= 1e-12
    last, big = checked[-1], rows[-1]
    beyond = f", {big['backward_calls']} for n = {big['diamonds']}" if big is not last else ""
    explanation = (f"backward ran exactly 3 operations per diamond ({last['backward_calls']} for n = "
                   f"{last['diamonds']}{beyond}), while the sum over "
                   f"paths took {last['path_sum_multiplications']:,} multiplications over {last['paths']:,} paths "
                   f"for n = {last['diamonds']}; the two gradients agree to "
                   f"{max(r['relative_difference'] for r in checked):.0e}")
    setup = {"graph": "n diamonds: a = σ(x), b = tanh(x), x' = a + b; 2ⁿ input-output paths", "sizes": list(sizes),
             "counted": "backward calls of every recorded operation during the engine's backward()",
             "baseline": "the chain rule summed over every path (products of local derivatives)"}
    setup["enumerated_up_to"] = enumerated
    return Result(setup, {"rows": rows}, HOLDS if linear and agree else FAILS, explanation,
                  f"n = {big['diamonds']}: {big['backward_calls']} backward calls for "
                  + (f"{big['paths']:,} paths" if big["paths"] < 10 ** 6 else f"{big['paths']:.1e} paths"))


def plot_backprop_linear(result: Result, out) -> None:
    from deepdive.claims.common import figure, save_figure

    fig, (ax,) = figure(1, 4.0)
    fig.set_size_inches(7, 4)
    rows = result.numbers["rows"]
    n = [r["diamonds"] for r in rows]
    ax.semilogy(n, [r["backward_calls"] for r in rows], "o-", label="backpropagation: backward calls (counted)")
    enumerated = [r for r in rows if r["path_sum_multiplications"] is not None]
    ax.semilogy([r["diamonds"] for r in enumerated], [max(r["path_sum_multiplications"], 1) for r in enumerated], "s-",
                label="sum over paths: multiplications")
    ax.semilogy(n, [r["paths"] for r in rows], ":", color="gray", label="paths, 2ⁿ")
    ax.set_xlabel("diamonds in the chain, n")
    ax.set_ylabel("work")
    ax.legend(fontsize=8)
    save_figure(fig, out)


def softplus_function(wrong: bool = False):
    """A user-defined op: y = log(1 + eˣ), ∂y/∂x = σ(x) (or, ``wrong``, σ'(x): the kind of slip gradcheck
    exists for)."""
    from deepdive.scratch.tensor import Function

    class Softplus(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return np.logaddexp(0.0, x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved
            s = 1 / (1 + np.exp(-x))
            return grad * (s * (1 - s) if wrong else s)

    return Softplus


def custom_layer(fast: bool = False, seed: int = 0) -> Result:
    import deepdive.scratch.nn as nn
    from deepdive.claims.common import seeded
    from deepdive.scratch import Tensor
    from deepdive.scratch import optim
    from deepdive.scratch.gradcheck import gradcheck

    rng = seeded(seed)
    softplus = softplus_function()
    alone = gradcheck(lambda x: softplus.apply(x), [rng.standard_normal((3, 4)) * 3])
    broken = gradcheck(lambda x: softplus_function(wrong=True).apply(x), [rng.standard_normal((3, 4)) * 3])

    class Net(nn.Module):  # 1 -> 16 -> 1 with the new op as its activation
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(1, 16), nn.Linear(16, 1)

        def forward(self, x):
            return self.fc2(softplus.apply(self.fc1(x)))

    net = Net().double()
    x = np.linspace(-2, 2, 64)[:, None]
    y = x ** 2

    def through_net(inp, w1, b1, w2, b2):
        return softplus.apply(inp @ w1.T + b1) @ w2.T + b2
    in_net = gradcheck(through_net, [x[::8], net.fc1.weight.data, net.fc1.bias.data, net.fc2.weight.data,
                                     net.fc2.bias.data])
    opt = optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(150 if fast else 600):
        opt.zero_grad()
        r = net(Tensor(x)) - Tensor(y)
        loss = (r * r).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    numbers = {"gradcheck_alone": {"ok": alone.ok, "max_rel_error": alone.max_rel_error},
               "gradcheck_in_network": {"ok": in_net.ok, "max_rel_error": in_net.max_rel_error},
               "gradcheck_wrong_derivative": {"ok": broken.ok, "max_rel_error": broken.max_rel_error},
               "training_loss_first": losses[0], "training_loss_last": losses[-1]}
    holds = alone.ok and in_net.ok and not broken.ok and losses[-1] < 0.1 * losses[0]
    explanation = (f"a Softplus written as forward + backward passed gradcheck alone (max rel error "
                   f"{alone.max_rel_error:.0e}) and inside a 1-16-1 network ({in_net.max_rel_error:.0e}), which then "
                   f"fit y = x² (MSE {losses[0]:.2f} → {losses[-1]:.4f}); a wrong derivative failed it "
                   f"({broken.max_rel_error:.0e})")
    setup = {"op": "Softplus: y = log(1 + eˣ), ∂y/∂x = σ(x), a scratch.tensor.Function subclass",
             "check": "scratch.gradcheck: central differences, float64, every element",
             "network": "Linear(1,16) → Softplus → Linear(16,1), Adam 0.05, fit x² on [−2, 2]"}
    return Result(setup, numbers, HOLDS if holds else FAILS, explanation,
                  f"gradcheck rel error {in_net.max_rel_error:.0e}; wrong derivative caught",
                  {"losses": losses, "net": net, "x": x, "y": y, "softplus": softplus})


def plot_custom_layer(result: Result, out) -> None:
    from deepdive.claims.common import figure, predict, save_figure

    fig, axes = figure(2, 4.0)
    x, y = result.arrays["x"], result.arrays["y"]
    axes[0].plot(x, y, color="black", label="x²")
    axes[0].plot(x, predict(result.arrays["net"], x), color="tab:blue", label="1-16-1 network with Softplus")
    axes[0].legend(fontsize=8)
    axes[0].set_xlabel("x")
    axes[1].semilogy(result.arrays["losses"])
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("mean squared error")
    save_figure(fig, out)
