"""Weights from elsewhere into a model: every tensor whose name and shape match (a pretrained file, another
run's weights) is loaded; what does not match - the classifier head when the classes differ, a replaced stem -
keeps its fresh initialisation, and the account of it is one log line."""
from __future__ import annotations

from deepdive.errors import UserError


def transfer_weights(model, state: dict, origin: str) -> str:
    """Load the tensors of ``state`` that fit ``model`` (same name and shape); refuse a state of which less
    than half fits (another architecture). Returns a one-line account of what stayed fresh."""
    import torch

    own = model.state_dict()
    # (a 0-d buffer - BatchNorm's num_batches_tracked - comes back from safetensors shaped (1,))
    fitting = {k: v.reshape(own[k].shape) for k, v in state.items()
               if k in own and (tuple(v.shape) == tuple(own[k].shape) or (v.numel() == 1 == own[k].numel()))}
    if len(fitting) * 2 < len(own):
        example = next((k for k in own if k not in fitting), "?")
        raise UserError(f"{origin} does not fit this model: only {len(fitting)} of its {len(own)} tensors match by "
                        f"name and shape (e.g. {example}): give weights of the same architecture")
    model.load_state_dict({k: v.to(own[k].dtype) if torch.is_tensor(v) else torch.as_tensor(v)
                           for k, v in fitting.items()}, strict=False)
    fresh = sorted({k.rsplit(".", 1)[0] for k in own if k not in fitting and not k.endswith("num_batches_tracked")})
    shown = ", ".join(fresh[:4]) + (f" and {len(fresh) - 4} more" if len(fresh) > 4 else "")
    return (f"loaded {len(fitting)} of the model's {len(own)} tensors from {origin}"
            + (f"; newly initialised: {shown}" if fresh else ""))
