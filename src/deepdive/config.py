"""TrainConfig and the ONE place where a run's configuration is resolved.

``resolve_config`` layers, lowest first:

    defaults  <  recipe (--recipe)  <  --config FILE  <  flags given

and ``resolve_resume`` replaces all of these by the run's stored config.json,
refusing any flag that differs unless ``--force`` (which then wins). Everything
below reads the resulting ``TrainConfig``; its resolved form is written into
every run folder, so ``deepdive train --config RUN/config.json`` repeats the run.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepdive.errors import UserError

ENGINES = ("torch", "scratch")
MAX_EPOCHS = 1_000_000
MAX_LR = 1e30  # far beyond any training (the divergence tests use 1e9), within what torch's lr can hold
MAX_SIDE = 4096  # the largest image side (--image-size, --synthetic-shape): schemas.MAX_SIDE
DEVICES = ("auto", "cpu", "cuda")
NORMALIZATIONS = ("dataset", "mnist")
TTA_MODES = ("none", "flip", "flip-shift")
NOT_ALTERING = {"data_dir", "threads", "figures", "svg", "log_every",  # where the data is, cores, what is shown,
                "dist_timeout"}  # how long processes wait for each other
EXCLUSIVE = (("warmup", "warmup_epochs"),)  # the higher layer's choice clears the other
# What a run folder's config.json meant by a key it lacks, where the default has changed since it was written:
# runs from before --resize-mode squashed their images (the default is now crop). RunDir.config and resume apply it.
OLDER_RUNS = {"resize_mode": "squash"}
# Options the scratch engine does not implement: refused by name, never silently ignored.
TORCH_ONLY_OPTIONS = {"ema": None, "augment": "none", "tta": "none", "amp": False, "compile": False,
                      "channels_last": None, "init_from": None, "freeze_backbone": False, "head_lr": None,
                      "sync_bn": False}


@dataclass
class TrainConfig:
    model: str = "simplenet"
    dataset: str = "fashion-mnist"
    data_dir: str = "./data"
    engine: str = "torch"
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's own default (optim.DEFAULT_LR), recorded once resolved
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
    recipe: str | None = None  # a named preset (recipes.py); flags given override its values
    schedule: str = "constant"  # learning-rate schedule over training progress (schedule.py)
    warmup: float = 0.0  # warm-up fraction of training
    label_smoothing: float = 0.0
    ema: float | None = None  # decay of an exponential moving average of the weights (evaluated instead)
    augment: str = "none"  # batched augmentation (data/augment.py)
    crop_pad: int = 2  # random-crop translation, in pixels
    tta: str = "none"  # test-time augmentation: none | flip | flip-shift
    widths: list | None = None  # fastnet block widths
    whiten: bool = True  # fastnet: frozen patch-whitening first layer
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
    sync_bn: bool = False  # distributed: BatchNorm statistics of the global batch (distributed.py)
    dist_timeout: float = 120.0  # distributed: seconds without an answer from another process before giving up

    def __post_init__(self) -> None:
        if self.lr is None and isinstance(self.optimizer, str):
            from deepdive.optim import DEFAULT_LR
            self.lr = DEFAULT_LR.get(self.optimizer)  # an unknown optimizer is refused by validate()
        self.validate()

    def validate(self) -> None:
        from deepdive.data import DATASETS
        from deepdive.models import MODELS, MODELS_SPECS
        from deepdive.optim import OPTIMIZERS

        from deepdive.models.registry import check_model_name
        check_model_name(self.model)
        _choice("dataset", self.dataset, DATASETS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("engine", self.engine, ENGINES)
        _choice("device", self.device, DEVICES)
        _choice("normalization", self.normalization, NORMALIZATIONS)
        from deepdive.data import AUGMENTATIONS
        from deepdive.models import spec
        from deepdive.recipes import RECIPES
        from deepdive.schedule import SCHEDULES
        if self.recipe is not None:
            _choice("recipe", self.recipe, RECIPES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("augment", self.augment, AUGMENTATIONS)
        _choice("tta", self.tta, TTA_MODES)
        from deepdive.data import RESIZE_MODES
        _choice("resize mode", self.resize_mode, RESIZE_MODES)
        if self.engine == "scratch":
            self._validate_scratch(spec(self.model).torch_only)
        if not isinstance(self.label_smoothing, (int, float)) or not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing {self.label_smoothing} is out of range: give a value in [0, 1)")
        if self.ema is not None and not 0 < self.ema < 1:
            raise UserError(f"--ema {self.ema} is out of range: give a decay in (0, 1), e.g. 0.99")
        if not isinstance(self.crop_pad, int) or self.crop_pad < 0:
            raise UserError(f"--crop-pad {self.crop_pad!r} is invalid: give 0 or a positive integer")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise UserError(f"--target-accuracy {self.target_accuracy} is not a fraction: give e.g. 0.612 for 61.2%")
        if self.time_budget is not None:
            _positive("time-budget", self.time_budget, float)
        _positive("evals-per-epoch", self.evals_per_epoch, int)
        if self.widths is not None and (not isinstance(self.widths, list) or not 1 <= len(self.widths) <= 16
                                        or not all(isinstance(w, int) and 0 < w <= 8192 for w in self.widths)):
            raise UserError(f"--widths {self.widths!r} is invalid: give 1 to 16 integers in 1..8192, e.g. 64,256,256")
        _positive("lr", self.lr, float)
        _positive("batch-size", self.batch_size, int)
        _positive("epochs", self.epochs, int)
        self._validate_schedule()
        _positive("image-size", self.image_size, int)
        _positive("save-every", self.save_every, int)
        if not isinstance(self.keep, int) or self.keep < 0:
            raise UserError(f"--keep {self.keep!r} is invalid: give 0 or a positive integer")
        if self.val_split is not None and not (0 < self.val_split < 1):
            raise UserError(f"--val-split {self.val_split} is out of range: give a fraction between 0 and 1, e.g. 0.1")
        if self.grad_clip is not None:
            _positive("grad-clip", self.grad_clip, float)
        for name in ("limit_train", "limit_test", "threads"):
            value = getattr(self, name)
            if value is not None:
                _positive(name.replace("_", "-"), value, int)
        if self.momentum is not None and not (0.0 <= self.momentum < 1.0):
            raise UserError(f"--momentum {self.momentum} is out of range: give a value in [0, 1)")
        if self.optimizer == "nesterov" and self.momentum == 0:
            raise UserError("--optimizer nesterov needs momentum > 0: drop --momentum 0 or use --optimizer sgd")
        if self.article_exact and not spec(self.model).article_exact:
            accepting = [name for name, s in MODELS_SPECS.items() if s.article_exact]
            raise UserError(f"--article-exact applies to --model {', '.join(accepting)} only: drop it for other models")
        if self.weight_decay is not None and not (0 <= self.weight_decay < float("inf")):
            raise UserError(f"--weight-decay {self.weight_decay} is invalid: give a finite value >= 0")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2 ** 63:
            raise UserError(f"--seed {self.seed!r} is out of range: give a whole number in 0..2**63-1")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or not 0 <= self.workers <= 256:
            raise UserError(f"--workers {self.workers!r} is invalid: give 0 (decode in the main process) to 256")
        if self.image_size > MAX_SIDE:
            raise UserError(f"--image-size {self.image_size} is too large: give at most {MAX_SIDE} pixels")
        if self.crop_pad > MAX_SIDE:
            raise UserError(f"--crop-pad {self.crop_pad} is too large: give fewer pixels than the image side")
        if not (isinstance(self.divergence_factor, (int, float)) and 1 < self.divergence_factor < float("inf")):
            raise UserError(f"--divergence-factor {self.divergence_factor!r} is invalid: give a number > 1, "
                            "e.g. 1000")
        _positive("max-image-mb", self.max_image_mb, float)
        _positive("dist-timeout", self.dist_timeout, float)
        if not (isinstance(self.log_every, (int, float)) and 0 <= self.log_every < float("inf")):
            raise UserError(f"--log-every {self.log_every!r} is invalid: give seconds >= 0 (0: no progress lines)")
        if self.max_image_mb > 1 << 20:
            raise UserError(f"--max-image-mb {self.max_image_mb:g} is beyond any image file: give at most {1 << 20}")
        if self.threads is not None and self.threads > 4 * (os.cpu_count() or 1):
            raise UserError(f"--threads {self.threads} is more than 4x this machine's {os.cpu_count()} cores: "
                            "give at most the number of cores")
        if self.epochs > MAX_EPOCHS:
            raise UserError(f"--epochs {self.epochs} is beyond any run: give at most {MAX_EPOCHS:,}")
        _validate_synthetic(self.synthetic, sized=self.dataset == "synthetic")
        self._validate_finetuning()

    def _validate_finetuning(self) -> None:
        from deepdive.models import spec

        if not spec(self.model).pretrained:
            used = [f for f in ("small_input", "pretrained", "weights") if getattr(self, f)]
            if used:
                raise UserError(f"--{used[0].replace('_', '-')} applies to tv:<name> and timm:<name> models, not "
                                f"{self.model}: drop it (--init-from RUN starts from another run's weights)")
        if self.init_from is not None and self.weights:
            raise UserError("--init-from and --weights both name the starting weights: give one of them")
        if self.freeze_backbone and self.eval_train_mode:
            raise UserError("--eval-train-mode measures with BatchNorm in train mode, which moves a frozen backbone's "
                            "statistics: drop one of --freeze-backbone and --eval-train-mode")
        if self.unfreeze_after is not None:
            if not self.freeze_backbone:
                raise UserError("--unfreeze-after needs --freeze-backbone: add it, or drop --unfreeze-after")
            if self.time_budget:
                raise UserError("--unfreeze-after counts epochs: it needs a known number of epochs, not --time-budget")
            if self.epochs < 2:
                raise UserError("--unfreeze-after needs --epochs of at least 2 (frozen epochs, then the rest)")
            if not isinstance(self.unfreeze_after, int) or isinstance(self.unfreeze_after, bool) \
                    or not 0 < self.unfreeze_after < self.epochs:
                raise UserError(f"--unfreeze-after {self.unfreeze_after!r} is out of range: give whole epochs "
                                f"1..{self.epochs - 1} (fewer than --epochs)")
        if self.head_lr is not None:
            _positive("head-lr", self.head_lr, float)
        for flag, value in (("lr", self.lr), ("head-lr", self.head_lr)):
            if value is not None and value > MAX_LR:
                raise UserError(f"--{flag} {value:g} is beyond any learning rate: give at most {MAX_LR:g}")
        for name in ("weights", "init_from"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise UserError(f"--{name.replace('_', '-')} {value!r} is invalid: give a path")
        if self.classes is not None:
            if not isinstance(self.classes, list) or not all(isinstance(c, (str, int)) and not isinstance(c, bool)
                                                             and str(c) for c in self.classes):
                raise UserError(f"--classes {self.classes!r} is invalid: give class names or indices separated by "
                                "commas, e.g. cat,dog or 3,5")
            if len(self.classes) < 2 or len({str(c) for c in self.classes}) != len(self.classes):
                raise UserError(f"--classes {','.join(map(str, self.classes))} must name at least two different "
                                "classes")

    def _validate_scratch(self, torch_only_model: bool) -> None:
        if torch_only_model:
            origin = f" (from --recipe {self.recipe})" if self.recipe else ""
            raise UserError(f"--model {self.model}{origin} needs the torch engine (BatchNorm, GELU): "
                            "drop --engine scratch or choose another model")
        used = [name for name, off in TORCH_ONLY_OPTIONS.items() if getattr(self, name) not in (off, None, False)]
        if used:
            flags = ", ".join(f"--{n.replace('_', '-')}" for n in used)
            raise UserError(f"{flags} {'is' if len(used) == 1 else 'are'} torch-engine only: "
                            "drop it or drop --engine scratch")

    def _validate_schedule(self) -> None:
        if not isinstance(self.warmup, (int, float)) or not 0 <= self.warmup < 1:
            raise UserError(f"--warmup {self.warmup} is out of range: give a fraction in [0, 1)")
        if self.warmup_epochs is not None:
            if self.warmup:
                raise UserError("--warmup and --warmup-epochs both given: give one of them")
            if self.time_budget:
                raise UserError("--warmup-epochs needs a known number of epochs: use --warmup F with --time-budget")
            if not (isinstance(self.warmup_epochs, (int, float)) and 0 <= self.warmup_epochs < self.epochs):
                raise UserError(f"--warmup-epochs {self.warmup_epochs!r} is out of range: give 0 <= E < --epochs")
        if self.schedule == "step":
            if self.time_budget:
                raise UserError("--sched step counts epochs: use cosine or warmup-linear with --time-budget")
            if self.decay_epochs is None:
                raise UserError("--sched step needs --decay-epochs N: the lr is multiplied by --decay-rate every N")
        elif self.decay_epochs is not None:
            raise UserError(f"--decay-epochs applies to --sched step, not {self.schedule}: drop it or use --sched step")
        if self.decay_epochs is not None:
            _positive("decay-epochs", self.decay_epochs, float)
        if not (isinstance(self.decay_rate, (int, float)) and 0 < self.decay_rate <= 1):
            raise UserError(f"--decay-rate {self.decay_rate!r} is out of range: give a factor in (0, 1], e.g. 0.1")

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

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(read_config_file(path))


def read_config_file(path: str | Path) -> dict:
    """The JSON object of a config file, or one line saying what is wrong with it."""
    path = Path(path)
    try:
        from deepdive.files import read_bounded
        values = json.loads(read_bounded(path, 1 << 20, "give the config.json of a run folder"))
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist: give the config.json of a run folder") from None
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, bad UTF-8, a 5,000-digit int
        raise UserError(f"config file {path} is not valid JSON ({exc}): give the config.json of a run folder") from None
    if not isinstance(values, dict):
        raise UserError(f"config file {path} does not hold a JSON object: give the config.json of a run folder")
    from deepdive.schemas import check_config
    check_config(values, str(path))
    return values


def did_you_mean(word, choices) -> str:
    """' (did you mean X?)' for the closest of ``choices``, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def _choice(what: str, value: str, choices) -> None:
    if value not in choices:
        raise UserError(f"unknown {what} {value!r}{did_you_mean(value, choices)}: choose one of {', '.join(choices)}")


def _positive(flag: str, value, kind) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or not value > 0 or value != value or value == float("inf"):
        raise UserError(f"--{flag} {value!r} is invalid: give a positive {'integer' if kind is int else 'number'}")


def _validate_synthetic(spec: dict, sized: bool = True) -> None:
    from deepdive.schemas import MAX_CLASSES, _fits, _config_schema

    if not _fits(spec, _config_schema().fields["synthetic"]):
        raise UserError(f"synthetic dataset spec {spec!r} is invalid: give shape C,H,W (C 1 or 3, sides up to "
                        f"{MAX_SIDE}), classes 2..{MAX_CLASSES}, train and test > 0")
    if not sized:
        return
    c, h, w = spec["shape"]
    needed = (spec["train"] + spec["test"]) * c * h * w
    from deepdive.data.imagefolder import memory_limit
    if needed > memory_limit():
        raise UserError(f"the synthetic dataset would take {needed / 1e9:.1f} GB, more than the "
                        f"{memory_limit() / 1e9:.1f} GB allowed: give a smaller --synthetic-shape")


# -- the one resolution ---------------------------------------------------------------------------------------
def resolve_config(flags: dict, config_file: str | None = None) -> TrainConfig:
    """defaults < recipe < ``--config`` file < flags given, validated once.

    ``flags`` holds only the options the user gave (the CLI suppresses defaults),
    keyed by TrainConfig field, plus ``synthetic_shape``/``synthetic_classes``.
    """
    from deepdive.recipes import RECIPES, recipe_values

    file_values = read_config_file(config_file) if config_file else {}
    file_values.pop("out", None)  # a re-run gets a fresh folder unless --out says otherwise
    flags = _fold_synthetic(flags, file_values.get("synthetic"))
    recipe = flags.get("recipe", file_values.get("recipe"))
    layers = []
    if recipe is not None:
        _choice("recipe", recipe, RECIPES)
        layers.append(recipe_values(recipe, flags.get("device", file_values.get("device", "auto"))))
    layers += [_lr_follows_optimizer(file_values, flags), flags]
    values: dict = {}
    for layer in layers:
        values = _overlay(values, layer)
    cfg = TrainConfig.from_dict(values)
    if not cfg.out:
        from deepdive.runs import default_run_dir
        cfg.out = str(default_run_dir(cfg.model, cfg.dataset))
    return cfg


def resolve_resume(saved: dict, flags: dict, force: bool = False) -> tuple[TrainConfig, list[str]]:
    """A resumed run's config: the stored one; a flag that differs is refused unless ``force`` makes it win."""
    if "out" in flags:
        raise UserError("--out cannot be combined with --resume: the run continues in its own folder")
    flags = _fold_synthetic(flags, saved.get("synthetic"))
    differences = [f"--{key.replace('_', '-')} {value!r} differs from the run's {saved.get(key)!r}"
                   for key, value in flags.items() if key not in NOT_ALTERING and saved.get(key) != value]
    if differences and not force:
        raise UserError("\n".join(f"{d}: drop it to resume as saved, or add --force to change the run"
                                  for d in differences))
    return TrainConfig.from_dict(_overlay(_lr_follows_optimizer(saved, flags), flags)), differences


def _lr_follows_optimizer(lower: dict, upper: dict) -> dict:
    """A config.json records the resolved lr. When ``upper`` changes the optimizer and gives no lr, an lr that
    was the old optimizer's default (and no recipe's choice) is dropped, so the new optimizer's default
    applies: ``--config RUN/config.json --opt adadelta`` trains Adadelta at 1.0, not at Adam's 1e-3."""
    from deepdive.optim import DEFAULT_LR

    if "optimizer" in upper and "lr" not in upper and lower.get("recipe") is None and "lr" in lower \
            and lower["lr"] == DEFAULT_LR.get(lower.get("optimizer", "adam")):
        return {k: v for k, v in lower.items() if k != "lr"}
    return lower


def _overlay(lower: dict, upper: dict) -> dict:
    """``upper`` on top of ``lower``; of an exclusive pair, the one ``upper`` sets clears the other."""
    values = {**lower, **upper}
    for a, b in EXCLUSIVE:
        if a in upper and b not in upper:
            values.pop(b, None)
        elif b in upper and a not in upper:
            values.pop(a, None)
    return values


def _fold_synthetic(flags: dict, base: dict | None) -> dict:
    """--synthetic-shape/--synthetic-classes are parts of the ``synthetic`` dict."""
    if "synthetic_shape" not in flags and "synthetic_classes" not in flags:
        return dict(flags)
    flags = dict(flags)
    synthetic = dict(base or TrainConfig.__dataclass_fields__["synthetic"].default_factory())
    if "synthetic_shape" in flags:
        synthetic["shape"] = list(flags.pop("synthetic_shape"))
    if "synthetic_classes" in flags:
        synthetic["classes"] = flags.pop("synthetic_classes")
    flags["synthetic"] = synthetic
    return flags
