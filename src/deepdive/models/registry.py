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
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelSpec:
    description: str
    module: str  # deepdive.models.<module> holds build(nn, F, input_shape, num_classes, **options)
    torch_only: bool = False  # uses layers the scratch engine lacks (BatchNorm, GELU)
    min_size: int = 1  # smallest image side the architecture accepts
    channels_last: bool = False  # convolutions run faster in NHWC on the CPU (oneDNN) and on tensor cores
    article_exact: bool = False  # accepts --article-exact (a published defect kept for reproduction)
    config_options: tuple[str, ...] = ()  # TrainConfig fields passed to build() when set
    init_from_data: str | None = None  # "function" in the module, called with (model, normalized images)
    defaults: dict = field(default_factory=dict)  # constructor defaults recorded in model.json
    small: bool = False  # steps take microseconds: a second CPU thread only adds synchronisation (bench/threads.py)
    named: bool = False  # build() takes the model's full name (the tv:/timm: adapter builds many architectures)
    pretrained: bool = False  # accepts --pretrained / --weights FILE (models/external.py)


MODELS_SPECS: dict[str, ModelSpec] = {
    "perceptron": ModelSpec("the article's perceptron f(x, w) = w^T x: one linear layer (a linear classifier)",
                            "perceptron", small=True),
    "simplenet": ModelSpec("the article's MLP SimpleNet: flatten -> 128 -> 64 -> classes, ReLU", "mlp",
                           article_exact=True, small=True),
    "article-cnn": ModelSpec("the article's CNN Net: 4 convs 3x3 (64,128,128,64), global avg pool, 64->32->classes, "
                             "dropout 0.5", "article_cnn", min_size=9),  # four unpadded 3x3 convs
    "fastnet": ModelSpec("fast CNN: frozen patch-whitening, conv-pool-BN-GELU blocks (--widths), dirac init "
                         "(torch only)", "fastnet", torch_only=True, min_size=9, channels_last=True,
                         config_options=("widths", "whiten"), init_from_data="init_whitening",
                         defaults={"widths": [64, 256, 256], "whiten": True}),  # 2x2 whitening + three pools
}
MODELS = {name: spec.description for name, spec in MODELS_SPECS.items()}
EXTERNAL = {"tv:<name>": "any torchvision classification model, e.g. tv:resnet18, tv:mobilenet_v3_small "
                         "(--small-input, --pretrained; `deepdive list --external` names them)",
            "timm:<name>": "any timm model, e.g. timm:resnet18 (pip install 'deepdive[timm]')"}


def spec(name: str) -> ModelSpec:
    """The spec of a model name; tv:<name> and timm:<name> get the external adapter's (torch only, resized
    inputs instead of a smallest size, --small-input/--pretrained as constructor options)."""
    from deepdive.models.external import split_name

    if split_name(name):
        return ModelSpec(f"{name} (models/external.py)", "external", torch_only=True, named=True, pretrained=True,
                         config_options=("small_input", "pretrained"),
                         defaults={"small_input": False, "pretrained": False})
    return MODELS_SPECS[name]


def check_model_name(name) -> None:
    """One line for a model name that is neither deepdive's own nor a tv:/timm: architecture that exists."""
    from deepdive.config import did_you_mean
    from deepdive.errors import UserError
    from deepdive.models.external import check_name, split_name

    if not isinstance(name, str):
        raise UserError(f"model {name!r} is not a name: give one of {', '.join(MODELS)}, tv:<name> or timm:<name>")
    if split_name(name):
        check_name(name)
    elif name not in MODELS_SPECS:
        raise UserError(f"unknown model {name!r}{did_you_mean(name, list(MODELS))}: give one of "
                        f"{', '.join(MODELS)}, tv:<name> or timm:<name>")


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
