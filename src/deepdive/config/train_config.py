"""``TrainConfig``: every option of a run, its default, and its check on construction (config/validation.py).

It is resolved once (config/resolve.py: defaults < recipe < --config < flags < resume), written into every run
folder as config.json, and read by everything below the command line; nothing else holds run options.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from deepdive.config.names import DEFAULT_LR, did_you_mean
from deepdive.config.validation import validate
from deepdive.errors import UserError

NOT_ALTERING = {"data_dir", "threads", "figures", "svg", "log_every",  # where the data is, cores, what is shown,
                "dist_timeout"}  # how long processes wait for each other
EXCLUSIVE = (("warmup", "warmup_epochs"),)  # the higher layer's choice clears the other
# What a run folder's config.json meant by a key it lacks, where the default has changed since it was written:
# runs from before --resize-mode squashed their images (the default is now crop). RunDir.config and resume apply it.
OLDER_RUNS = {"resize_mode": "squash"}


@dataclass
class TrainConfig:
    model: str = "simplenet"
    dataset: str = "fashion-mnist"
    data_dir: str = "./data"
    engine: str = "torch"
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's own default (config.names.DEFAULT_LR), recorded once resolved
    momentum: float | None = None  # None: the optimizer's own default
    weight_decay: float | None = None  # None: the optimizer's own default
    batch_size: int = 64
    epochs: int = 10
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    article_exact: bool = False
    image_size: int = 32
    download: bool = True
    normalization: str = "dataset"  # "mnist": the article's (0.1307, 0.3081) on every channel
    eval_train_mode: bool = False  # also report accuracy with dropout active, as the article's script measured it
    threads: int | None = None  # CPU threads for torch; None: all cores
    save_every: int = 1  # checkpoint every N epochs (and always at the end)
    keep: int = 0  # keep checkpoints/epoch-NNN.safetensors for the last K epochs
    val_split: float | None = None  # hold out this stratified fraction of train for validation
    grad_clip: float | None = None  # clip the global gradient norm to this
    strict: bool = False  # imagefolder: refuse unreadable files instead of skipping them
    recipe: str | None = None  # a named preset (config/recipes.py); flags given override its values
    schedule: str = "constant"  # learning-rate schedule over training progress (training/schedule.py)
    warmup: float = 0.0  # warm-up fraction of training
    label_smoothing: float = 0.0
    ema: float | None = None  # decay of an exponential moving average of the weights (evaluated instead)
    augment: str = "none"  # batched augmentation (data/augment.py)
    crop_pad: int = 2  # random-crop translation, in pixels
    tta: str = "none"  # test-time augmentation: none | flip | flip-shift
    widths: list | None = None  # fastnet block widths
    whiten: bool = True  # fastnet: frozen patch-whitening first layer
    identity_init: bool = True  # fastnet: each block's convolutions start as the identity (dirac)
    decoupled_wd: bool = False  # weight decay as θ ← θ(1 − ηλ), outside the gradient
    amp: bool = False  # bf16 autocast (CUDA, or a CPU with native bf16)
    compile: bool = False  # torch.compile the model
    target_accuracy: float | None = None  # stop when the test accuracy reaches this
    time_budget: float | None = None  # train for this many seconds; the schedule follows elapsed time
    evals_per_epoch: int = 4  # test evaluations per epoch while chasing --target-accuracy
    stop_at_target: bool = True  # False: note when the target is reached, train on to the end
    eval_each_epoch: bool = True  # False: evaluate after the last epoch only (timed benchmarks)
    workers: int = 2  # DataLoader workers when an image folder must be streamed from disk
    synthetic: dict = field(default_factory=lambda: {"shape": [3, 32, 32], "classes": 10, "train": 2000, "test": 500})
    warmup_epochs: float | None = None  # warm-up counted in epochs (instead of --warmup's fraction)
    decay_epochs: float | None = None  # --sched step: multiply the lr by decay_rate every this many epochs
    decay_rate: float = 0.1  # --sched step's factor
    channels_last: bool | None = None  # NHWC memory; None: what the model declares (models/registry.py)
    decay_norm_and_bias: bool = False  # also decay biases and normalization weights (default: conv/linear weights)
    divergence_factor: float = 1000.0  # a loss above this times the first step's fails the run, as NaN does
    max_image_mb: float = 256.0  # image files larger than this are unreadable, never read (image folders)
    resize_mode: str = "crop"  # image files to --image-size: crop (shorter side, then centre) or squash (both sides)
    figures: bool = True  # RUN/figures/*.png when the run completes (viz/run_figures.py)
    svg: bool = False  # the figures as SVG too
    log_every: float = 30.0  # seconds between progress lines when the output is not a terminal (0: none)
    tensorboard: bool = False  # RUN/tensorboard/ event files (viz/tensorboard.py; an optional extra)
    small_input: bool = False  # tv:/timm: models: a 3x3 stride-1 stem without max-pool, for 32x32 images
    pretrained: bool = False  # tv:/timm: models: start from the library's pretrained weights
    weights: str | None = None  # tv:/timm: models: the pretrained weights from this file (offline)
    init_from: str | None = None  # start from this run folder's weights (the head replaced if classes differ)
    freeze_backbone: bool = False  # train only the classifier head
    unfreeze_after: int | None = None  # with --freeze-backbone: train everything after this many epochs
    head_lr: float | None = None  # the head's own (absolute) learning rate; the rest uses --lr
    classes: list | None = None  # train and test on these classes only (names or indices), in this order
    sync_bn: bool = False  # distributed: BatchNorm statistics of the global batch (training/ddp/)
    dist_timeout: float = 120.0  # distributed: seconds without an answer from another process before giving up

    def __post_init__(self) -> None:
        if self.lr is None and isinstance(self.optimizer, str):
            self.lr = DEFAULT_LR.get(self.optimizer)  # an unknown optimizer is refused by validate()
        self.validate()

    def validate(self) -> None:
        """Every value in range, every name known (config/validation.py), or one line naming the fix."""
        validate(self)

    def warmup_fraction(self) -> float:
        """The warm-up as a fraction of training, whichever way it was given."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs / self.epochs
        return self.warmup

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from resolved values (a config.json); unknown keys are refused with the closest known one."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"unknown config key(s) {', '.join(unknown)}{did_you_mean(unknown[0], known)}: "
                            f"remove them (known: {', '.join(sorted(known))})")
        return cls(**values)


