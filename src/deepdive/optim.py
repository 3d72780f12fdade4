"""Optimizer factory over ``torch.optim`` (or ``deepdive.scratch.optim``: same API).

The article's update rules and the optimizer that implements each:

- gradient descent, mini-batch SGD: θ = θ − η ∇L(θ)                      -> ``sgd``
- momentum: v = γ v + η ∇L(θ); θ = θ − v                               -> ``momentum``
- Nesterov momentum (gradient taken at the look-ahead point)            -> ``nesterov``
- Adagrad: θ = θ − η / sqrt(G + ε) ⊙ g, G the sum of squared gradients  -> ``adagrad``
- Adadelta: steps scaled by RMS[Δθ] / RMS[g], no global η needed         -> ``adadelta``
- RMSprop: running average of g², θ = θ − η g / sqrt(E[g²] + ε)           -> ``rmsprop``
- Adam: m, v moment estimates with bias correction                     -> ``adam``, ``adamw``

On momentum: torch.optim.SGD keeps v = γ v + ∇L; θ = θ − η v. Writing the
article's v as η times torch's v shows that the two take exactly the same steps
while η is constant; once η changes during training (a schedule), they differ:
the article's velocity remembers the old step sizes, torch's rescales the whole
velocity by the new η.
"""
from __future__ import annotations

OPTIMIZERS = {
    "sgd": "plain SGD: θ -= η∇L (momentum 0 unless --momentum)",
    "momentum": "SGD with momentum (--momentum, default 0.9)",
    "nesterov": "SGD with Nesterov momentum (--momentum, default 0.9)",
    "adagrad": "Adagrad: per-parameter steps shrink with the sum of squared gradients",
    "adadelta": "Adadelta: steps scaled by RMS of past updates over RMS of gradients",
    "rmsprop": "RMSprop: steps scaled by a running RMS of gradients",
    "adam": "Adam: bias-corrected first and second moment estimates",
    "adamw": "AdamW: Adam with decoupled weight decay",
}


def build_optimizer(name: str, params, lr: float, momentum: float | None = None,
                    weight_decay: float | None = None, optim=None):
    """Build optimizer ``name``; ``optim`` is the module providing the classes (torch.optim by default)."""
    if optim is None:
        import torch.optim as optim
    params = list(params)
    wd = {} if weight_decay is None else {"weight_decay": weight_decay}
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum or 0.0, **wd)
    if name in ("momentum", "nesterov"):
        return optim.SGD(params, lr=lr, momentum=0.9 if momentum is None else momentum, **wd,
                         nesterov=(name == "nesterov"))
    if name == "adagrad":
        return optim.Adagrad(params, lr=lr, **wd)
    if name == "adadelta":
        return optim.Adadelta(params, lr=lr, **wd)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, momentum=momentum or 0.0, **wd)
    if name == "adam":
        return optim.Adam(params, lr=lr, **wd)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, **wd)
    raise KeyError(name)
