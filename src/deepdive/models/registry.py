"""The model registry: name -> a ``ModelSpec`` that declares what the model needs.

Families receive the ``nn`` and ``F`` namespaces, so one definition serves
both engines (``torch.nn`` and ``deepdive.scratch.nn``). Everything that differs
between models - which engines can run them, the smallest image they accept,
whether they prefer channels-last memory, which config values become
constructor arguments, a data-dependent initialisation - is declared here, so
generic code (the loop, loading, config validation) never tests a model's name.
"""
from __future__ import annotations

import importlib

from deepdive.config.specs import spec  # the declarations (config/specs.py); built here


def model_options(name: str, values: dict) -> dict:
    """Every constructor argument of model ``name`` beyond shape and classes, from config ``values``.

    The result goes into model.json, so a run rebuilds from model.json alone.
    """
    s = spec(name)
    options = dict(s.defaults)
    for key in s.config_options:
        if values.get(key) is not None:
            options[key] = values[key]
    if s.pretrained and values.get("weights"):
        options["pretrained"] = True  # a weights file stands for the pretrained weights: same architecture
    if s.article_exact:
        options["article_exact"] = bool(values.get("article_exact", False))
    return options


def build_model(name: str, nn, F, input_shape, num_classes: int, **options):
    """Build model ``name`` for inputs of ``input_shape`` (C, H, W) and ``num_classes`` outputs."""
    s = spec(name)
    if min(input_shape[1:]) < s.min_size:
        from deepdive.errors import UserError
        raise UserError(f"{name} needs images of at least {s.min_size}x{s.min_size} pixels, the data has "
                        f"{input_shape[1]}x{input_shape[2]}: use larger images (e.g. --image-size) or another model")
    family = importlib.import_module(f"deepdive.models.{s.module}")
    if "widths" in options:
        options["widths"] = tuple(options["widths"])
    if s.named:
        options["name"] = name
    return family.build(nn, F, tuple(input_shape), int(num_classes), **options)


def state_size(name: str, input_shape, num_classes: int, **options) -> int:
    """Numbers in the model's state (parameters and buffers), counted on PyTorch's "meta" device: the
    model code runs, no memory is allocated. The same code builds the scratch engine's model, so the
    count holds for both engines. Checked before a model is really built, so that an absurd input
    shape or width is an error rather than an allocation of many gigabytes."""
    import torch

    with torch.device("meta"):
        model = build_model(name, torch.nn, torch.nn.functional, input_shape, num_classes, **dict(options))
    return sum(v.numel() for v in model.state_dict().values())


def init_from_data(name: str, model, images, options: dict) -> None:
    """Run the model's data-dependent initialisation (fastnet's patch whitening), if it declares one."""
    s = spec(name)
    if s.init_from_data and options.get("whiten", True):
        getattr(importlib.import_module(f"deepdive.models.{s.module}"), s.init_from_data)(model, images)
