"""Optimizer factory over ``torch.optim`` (or ``deepdive.scratch.optim``: same API).

The article's update rules and the optimizer that implements each:

- gradient descent, mini-batch SGD: θ = θ − η ∇L(θ)                      -> ``sgd``
- momentum: v = γ v + η ∇L(θ); θ = θ − v                               -> ``momentum``
- Nesterov momentum (gradient taken at the look-ahead point)            -> ``nesterov``
- Adagrad: θ = θ − η g / (√G + ε), G the sum of squared gradients      -> ``adagrad``
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

from deepdive.config.names import DEFAULT_WEIGHT_DECAY



# torch.optim's default learning rates, used when --lr is not given. Adadelta's 1.0 is the point of
# Adadelta ("no global learning rate": the step is RMS[Δθ]/RMS[g]·g, scaled by lr only as a safety knob).



def parameter_groups(model, weight_decay: float | None, optimizer: str = "sgd", decay_norm_and_bias: bool = False,
                     decoupled: bool = False, head: set[str] | None = None) -> list[dict]:
    """The trainable parameters in optimizer groups: weight decay on weights, not on biases and norms.

    Decay pulls a convolution's or linear layer's weights towards 0 (a smaller,
    smoother function). A bias or a normalization scale has no such role - decaying
    BatchNorm's scale only fights its normalization - so one-dimensional parameters
    go in a group without decay unless ``decay_norm_and_bias``. With ``decoupled``
    the decay is θ ← θ(1 − ηλ) applied by the loop (``decoupled_wd`` in the
    group) instead of λθ added to the gradient by the optimizer. With ``head``
    (parameter names: ``--head-lr``) the head's parameters get groups of their own,
    marked ``"role": "head"``, whose learning rate the loop sets apart.
    """
    wd = DEFAULT_WEIGHT_DECAY.get(optimizer, 0.0) if weight_decay is None else weight_decay
    named = model.named_parameters() if hasattr(model, "named_parameters") else enumerate(model.parameters())
    parts: dict[tuple, list] = {}
    for name, p in named:
        if getattr(p, "requires_grad", True):
            decays = decay_norm_and_bias or p.ndim > 1
            parts.setdefault((head is not None and name in head, decays), []).append(p)
    key, other = ("decoupled_wd", "weight_decay") if decoupled else ("weight_decay", None)
    groups = []
    for in_head in (False, True):
        for decays in (True, False):
            group = {"params": parts.get((in_head, decays), []), key: wd if decays else 0.0}
            if other:
                group[other] = 0.0
            if head is not None:
                group["role"] = "head" if in_head else "backbone"
            groups.append(group)
    return [g for g in groups if g["params"]]


def apply_decoupled_decay(optimizer, scale) -> None:
    """θ ← θ(1 − η_g λ_g) for every group g with a decoupled decay λ_g (η_g: the group's current lr).

    ``scale(params, factor)`` multiplies parameters in place (the engine's ``scale_``).
    """
    for group in optimizer.param_groups:
        wd = group.get("decoupled_wd")
        if wd:  # a frozen parameter (--freeze-backbone) does not change, not even by decay
            params = [p for p in group["params"] if getattr(p, "requires_grad", True)]
            if params:
                scale(params, 1 - group["lr"] * wd)


def build_optimizer(name: str, params, lr: float, momentum: float | None = None,
                    weight_decay: float | None = None, optim=None):
    """Build optimizer ``name`` over ``params`` (parameters, or groups as ``parameter_groups`` makes);
    ``optim`` is the module providing the classes (torch.optim by default)."""
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
