"""What each model and each dataset is, declared as data: the specs the configuration validates against.

A ``ModelSpec`` says what a model needs - which engines can run it, the smallest image it accepts, whether
it prefers channels-last memory, which config values become constructor arguments, a data-dependent
initialisation - so generic code (the loop, loading, config validation) never tests a model's name. The
floors above act on these declarations: ``models/registry.py`` builds a model from its family module
(``deepdive.models.<module>``), ``data/datasets.py`` loads a dataset with its reader
(``deepdive.data.<reader>``). The declarations live here, below both, because validating a configuration
must not import the code that builds models or reads data.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from deepdive.config.names import did_you_mean
from deepdive.errors import UserError

@dataclass(frozen=True)
class EngineSpec:
    """What an engine can do, so that generic code asks the spec instead of testing the engine's name."""
    description: str
    refuses: dict = field(default_factory=dict)  # options it does not implement: name -> the value that is "off"
    every_model: bool = True  # False: only models without torch-only layers (ModelSpec.torch_only)
    distributed: bool = True  # trains under torchrun + DDP
    note: str = ""  # shown beside a model's name in tables ("" for the default engine)


ENGINE_SPECS: dict[str, EngineSpec] = {
    "torch": EngineSpec("PyTorch, on the CPU or CUDA"),
    "scratch": EngineSpec("deepdive.scratch, the from-scratch NumPy engine (CPU)",
                          # refused by name, never silently ignored
                          refuses={"ema": None, "augment": "none", "tta": "none", "amp": False, "compile": False,
                                   "channels_last": None, "init_from": None, "freeze_backbone": False,
                                   "head_lr": None, "sync_bn": False},
                          every_model=False, distributed=False, note=" (scratch)"),
}
ENGINES = tuple(ENGINE_SPECS)

SOURCES = {"tv": "torchvision", "timm": "timm"}
TIMM_HINT = "timm models need the timm extra: pip install 'deepdive[timm]'"


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
    example_input: tuple | None = None  # (C, H, W) the teaching commands feed it (parity, graph): the article's data


MODELS_SPECS: dict[str, ModelSpec] = {
    "perceptron": ModelSpec("the article's perceptron f(x, w) = w^T x: one linear layer (a linear classifier)",
                            "perceptron", small=True, example_input=(1, 28, 28)),
    "simplenet": ModelSpec("the article's MLP SimpleNet: flatten -> 128 -> 64 -> classes, ReLU", "mlp",
                           article_exact=True, small=True, example_input=(1, 28, 28)),
    "article-cnn": ModelSpec("the article's CNN Net: 4 convs 3x3 (64,128,128,64), global avg pool, 64->32->classes, "
                             "dropout 0.5", "article_cnn", min_size=9, example_input=(3, 32, 32)),  # four unpadded 3x3 convs
    "fastnet": ModelSpec("fast CNN: frozen patch-whitening, conv-pool-BN-GELU blocks (--widths), dirac init "
                         "(torch only)", "fastnet", torch_only=True, min_size=9, channels_last=True,
                         config_options=("widths", "whiten", "identity_init"), init_from_data="init_whitening",
                         defaults={"widths": [64, 256, 256], "whiten": True}),  # 2x2 whitening + three pools
}
MODELS = {name: spec.description for name, spec in MODELS_SPECS.items()}
EXTERNAL = {"tv:<name>": "any torchvision classification model, e.g. tv:resnet18, tv:mobilenet_v3_small "
                         "(--small-input, --pretrained; `deepdive list --external` names them)",
            "timm:<name>": "any timm model, e.g. timm:resnet18 (pip install 'deepdive[timm]')"}


def scratch_models() -> dict[str, tuple]:
    """The models both engines run (the scratch engine lacks BatchNorm, GELU), with the input the teaching
    commands feed them: ``deepdive parity`` and ``deepdive graph`` offer exactly these."""
    return {name: s.example_input for name, s in MODELS_SPECS.items() if not s.torch_only}


def spec(name: str) -> ModelSpec:
    """The spec of a model name; tv:<name> and timm:<name> get the external adapter's (torch only, resized
    inputs instead of a smallest size, --small-input/--pretrained as constructor options)."""
    if split_name(name):
        return ModelSpec(f"{name} (models/external.py)", "external", torch_only=True, named=True, pretrained=True,
                         config_options=("small_input", "pretrained"),
                         defaults={"small_input": False, "pretrained": False})
    return MODELS_SPECS[name]


def check_model_name(name) -> None:
    """One line for a model name that is neither deepdive's own nor a tv:/timm: architecture that exists."""
    if not isinstance(name, str):
        raise UserError(f"model {name!r} is not a name: give one of {', '.join(MODELS)}, tv:<name> or timm:<name>")
    if split_name(name):
        check_name(name)
    elif name not in MODELS_SPECS:
        raise UserError(f"unknown model {name!r}{did_you_mean(name, list(MODELS))}: give one of "
                        f"{', '.join(MODELS)}, tv:<name> or timm:<name>")


def split_name(name: str) -> tuple[str, str] | None:
    """("tv", "resnet18") for "tv:resnet18"; None for deepdive's own models."""
    prefix, sep, arch = name.partition(":")
    return (prefix, arch) if sep and prefix in SOURCES else None


def available(source: str) -> list[str]:
    """The classification architectures a source offers (importing it: only when such a name is used)."""
    if source == "tv":
        import torchvision.models as tvm
        return sorted(tvm.list_models(module=tvm))
    try:
        import timm
    except ImportError:
        raise UserError(TIMM_HINT) from None
    return sorted(timm.list_models())


def check_name(name: str) -> None:
    """A one-line error for an architecture the source does not have, with the closest names."""
    source, arch = split_name(name)
    names = available(source)
    if source == "timm":
        arch = arch.split(".", 1)[0]  # timm:resnet18.a1_in1k: the architecture, with a tag naming its weights
    if arch not in names:
        hint = did_you_mean(arch, names)
        raise UserError(f"--model {name}: {SOURCES[source]} has no classification model {arch!r}{hint}: "
                        f"`deepdive list --external` shows them")


@dataclass(frozen=True)
class DatasetSpec:
    description: str
    reader: str  # deepdive.data.<reader> holds read_dataset(name, DataOptions) -> Loaded
    mean_std: tuple | None = None  # the per-channel normalization; None: measured on the training images


DATASET_SPECS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("CIFAR-10, 32x32 RGB, 10 classes (torchvision's cifar-10-batches-py/ layout; downloaded "
                           "if missing)", "cifar", ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))),
    "fashion-mnist": DatasetSpec("Fashion-MNIST, 28x28 grey, 10 classes (idx files; also Debian's "
                                 "dataset-fashion-mnist)", "mnist", ((0.2860,), (0.3530,))),
    "mnist": DatasetSpec("MNIST digits, 28x28 grey, 10 classes (idx files)", "mnist", ((0.1307,), (0.3081,))),
    "imagefolder": DatasetSpec("DIR/train/<class>/* with test/<class>/* and/or val/<class>/*, or DIR/<class>/* "
                               "with --val-split; any image PIL opens, fitted to --image-size (--resize-mode)",
                               "imagefolder"),
    "synthetic": DatasetSpec("generated, learnable data of a chosen shape and class count (tests, smoke runs)",
                             "synthetic"),
}
DATASETS = {name: s.description for name, s in DATASET_SPECS.items()}
