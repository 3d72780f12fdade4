"""Datasets by name: each declared by a ``DatasetSpec`` (config/specs.py) and read by its reader module.

A reader module ``deepdive.data.<reader>`` offers ``read_dataset(name, DataOptions) -> Loaded``; this module
looks the reader up, applies the declared (or measured) normalization and the run's subset and validation
choices. Everything here takes plain arguments; torch and the readers are imported on first use, so that the
names (used by ``--help`` and config validation) cost nothing.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field

from deepdive.config.specs import DATASET_SPECS
from deepdive.errors import UserError

log = logging.getLogger("deepdive")


@dataclass
class DataOptions:
    """What the readers need to know, as plain values (a run builds it from its configuration)."""
    data_dir: str = "./data"
    download: bool = True
    image_size: int = 32
    strict: bool = False
    workers: int = 2
    max_image_mb: float = 256.0
    resize_mode: str = "crop"
    val_split: float | None = None
    seed: int = 0
    synthetic: dict = field(default_factory=lambda: {"shape": [3, 32, 32], "classes": 10, "train": 2000,
                                                     "test": 500})
    normalization: str = "dataset"  # "mnist": the article's (0.1307, 0.3081) on every channel
    test_only: bool = False  # readers that decode file by file may skip the training split


@dataclass
class Loaded:
    """A reader's result: the splits, the class names, and where they came from (image folders)."""
    train: object
    test: object
    classes: list
    val: object = None
    source: dict = field(default_factory=dict)


def load_dataset(name: str, options: DataOptions) -> "DataBundle":  # noqa: F821
    """Load the full dataset ``name`` (no subsetting). With ``options.test_only`` the training split's
    normalization statistics are not computed: the caller has its own."""
    try:
        return _load(name, options)
    except OSError as exc:  # unreadable folder, path too long, I/O error: the data, not the run
        where = exc.filename if exc.filename is not None else options.data_dir
        raise UserError(f"cannot read {name} data at {where!r} ({exc.strerror or exc}): check --data-dir") from None


def _load(name: str, options: DataOptions):
    from deepdive.data.pipeline import MNIST_MEAN_STD, DataBundle, Split, channel_mean_std

    spec = DATASET_SPECS[name]  # the config validated the name already
    loaded = importlib.import_module(f"deepdive.data.{spec.reader}").read_dataset(name, options)
    if spec.mean_std is not None:
        mean, std = spec.mean_std
    elif len(loaded.train):
        train = loaded.train
        mean, std = channel_mean_std(train.images if isinstance(train, Split) else train.head(2000))
    else:
        mean, std = (0.5,) * 3, (0.25,) * 3
    if options.normalization == "mnist":
        mean, std = MNIST_MEAN_STD
    return DataBundle(name, loaded.train, loaded.test, list(loaded.classes), tuple(mean), tuple(std), loaded.val,
                      loaded.source)


def prepare_data(name: str, options: DataOptions, classes: list | None = None, limit_train: int | None = None,
                 limit_test: int | None = None):
    """The dataset a run trains on: loaded, cut to ``--limit-train/--limit-test``, validation held out."""
    from deepdive.data.pipeline import balanced_subset, stratified_split

    bundle = load_dataset(name, options)
    if classes:
        from deepdive.data.classes import select_classes
        select_classes(bundle, classes)
    for flag, limit, split in (("--limit-train", limit_train, "train"), ("--limit-test", limit_test, "test")):
        if limit and limit > len(getattr(bundle, split)):
            log.warning("warning: %s %d is more than the %d %s images: using all of them", flag, limit,
                        len(getattr(bundle, split)), split)
    if limit_train:
        bundle.train = balanced_subset(bundle.train, limit_train, options.seed)
    if limit_test:
        bundle.test = balanced_subset(bundle.test, limit_test, options.seed + 1)
    if options.val_split and bundle.source.get("data_layout") != "single":  # (a single folder's made its test split)
        bundle.train, bundle.val = stratified_split(bundle.train, options.val_split, options.seed + 2)
    return bundle
