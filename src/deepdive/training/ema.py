"""Exponential moving average of the weights: θ̄ = d·θ̄ + (1 − d)·θ after each update.

Averaging the last stretch of the trajectory gives weights that generalize
better than the final noisy iterate; with a short warm-up d_t = min(d, (1+t)/(10+t))
so early averages are not dominated by the random init. Buffers (BatchNorm
running statistics) are copied, not averaged.
"""
from __future__ import annotations

import copy


class EMA:
    def __init__(self, model, decay: float):
        import torch

        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.torch = torch

    def update(self, model) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with self.torch.no_grad():
            ema_state, state = self.model.state_dict(), model.state_dict()
            floats = [k for k, v in state.items() if v.dtype.is_floating_point and not k.endswith("running_var")
                      and not k.endswith("running_mean")]
            self.torch._foreach_lerp_([ema_state[k] for k in floats], [state[k] for k in floats], 1 - d)
            for k, v in state.items():
                if k not in floats:
                    ema_state[k].copy_(v)

    def state(self) -> dict:
        return {"updates": self.updates, "weights": {k: v.detach().cpu().clone()
                                                     for k, v in self.model.state_dict().items()}}

    def load_state(self, state: dict) -> None:
        self.updates = state["updates"]
        self.model.load_state_dict(state["weights"])
