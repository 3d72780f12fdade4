"""Fine-tuning: start from other weights, freeze the backbone, give the head its own learning rate.

- ``init_from_run``: another run's weights, loaded by ``models.transfer.transfer_weights``.
- ``head_names``: the classifier head is found, not named per model: the last linear layer (or 1x1
  convolution, SqueezeNet's) whose outputs are the classes.
- ``Freezer``: ``--freeze-backbone`` turns gradients off for every parameter outside the head and keeps
  the backbone's BatchNorm layers in eval mode (their running statistics would otherwise drift with the
  new data, changing the frozen function); ``--unfreeze-after E`` trains everything from epoch E + 1.
  Applied at every step from the epoch number, so a resumed run freezes exactly as the original did.
"""
from __future__ import annotations

from pathlib import Path

from deepdive.errors import UserError
from deepdive.models.transfer import transfer_weights


def init_from_run(model, model_name: str, classes: list[str], input_shape, folder: str,
                  options: dict | None = None) -> str:
    """``--init-from RUN``: another run's weights, checked to be of the same model, constructor options (a
    pretrained run's input resize and preprocessing, --small-input, --widths, ...) and input channels; the
    head is replaced (kept fresh) when the classes differ."""
    import numpy as np
    import torch

    from deepdive.storage.weights import load_weights
    from deepdive.storage.runs import WEIGHTS, RunDir

    run = RunDir.open(folder)
    info = run.model_info()
    if info["model"] != model_name:
        raise UserError(f"--init-from {folder} holds a {info['model']} model, this run trains {model_name}: give "
                        f"a run of --model {model_name}")
    theirs = info.get("options")
    if options is not None and theirs is not None and theirs != options:
        differ = sorted(k for k in set(theirs) | set(options) if theirs.get(k) != options.get(k))
        shown = ", ".join(f"{k}={theirs.get(k)!r}" for k in differ)
        raise UserError(f"--init-from {folder} was built with {shown}, this run with "
                        f"{', '.join(f'{k}={options.get(k)!r}' for k in differ)}: give the flags it was trained with "
                        "(e.g. --pretrained for a pretrained run's resize and normalization, --small-input, --widths)")
    if info["input_shape"][0] != input_shape[0]:
        raise UserError(f"--init-from {folder} was trained on {info['input_shape'][0]}-channel images, this data "
                        f"has {input_shape[0]}: give a run trained on images of the same channels")
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in load_weights(run.file(WEIGHTS)).items()}
    if list(info["classes"]) != list(classes):
        head = head_names(model, len(classes))
        state = {k: v for k, v in state.items() if k not in head}
        why = f"the classes differ ({len(info['classes'])} there, {len(classes)} here): the head starts fresh"
    else:
        why = "the same classes: the head is kept"
    return f"{transfer_weights(model, state, Path(folder).name + '/' + WEIGHTS)} ({why})"


def head_names(model, num_classes: int) -> set[str]:
    """Names of the classifier head's parameters (and buffers): those of the last linear layer, or 1x1
    convolution, that produces ``num_classes`` outputs."""
    from torch import nn

    head = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            head = name
        elif isinstance(module, nn.Conv2d) and module.out_channels == num_classes and module.kernel_size == (1, 1):
            head = name
    if head is None:
        raise UserError(f"this model has no final layer with {num_classes} outputs to treat as the head: "
                        "drop --freeze-backbone/--head-lr")
    return {f"{head}.{k}" if head else k for k in dict(model.get_submodule(head).state_dict())}


class Freezer:
    """Gradients off for the backbone until ``until_epoch`` (None: for the whole run)."""

    def __init__(self, model, head: set[str], until_epoch: int | None):
        from torch.nn.modules.batchnorm import _BatchNorm

        # parameters frozen by the model itself (fastnet's whitening) stay frozen after unfreezing
        self.backbone = [p for n, p in model.named_parameters() if n not in head and p.requires_grad]
        head_modules = {n.rsplit(".", 1)[0] for n in head}
        self.norms = [m for n, m in model.named_modules() if isinstance(m, _BatchNorm) and n not in head_modules]
        self.until_epoch = until_epoch

    def frozen(self, epoch: int) -> bool:
        return self.until_epoch is None or epoch < self.until_epoch

    def apply(self, model, epoch: int) -> None:
        frozen = self.frozen(epoch)
        for p in self.backbone:
            p.requires_grad_(not frozen)
        if frozen and model.training:
            for m in self.norms:
                m.eval()
