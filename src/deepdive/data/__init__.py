"""Datasets: a registry of names, each loaded into memory as a ``DataBundle``.

Imports of torch and the readers happen inside ``load_dataset`` so that the
registry itself (used by ``--help`` and config validation) is free to import.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deepdive.config import TrainConfig
    from deepdive.data.pipeline import DataBundle

from deepdive.errors import UserError

log = logging.getLogger("deepdive")

AUGMENTATIONS = ("none", "flip", "crop-flip", "crop-altflip", "altflip")  # see data/augment.py
RESIZE_MODES = ("crop", "squash")  # how image files are fitted to --image-size (data/imagefolder.py)

DATASETS = {
    "cifar10": "CIFAR-10, 32x32 RGB, 10 classes (torchvision's cifar-10-batches-py/ layout; downloaded if missing)",
    "fashion-mnist": "Fashion-MNIST, 28x28 grey, 10 classes (idx files; also Debian's dataset-fashion-mnist)",
    "mnist": "MNIST digits, 28x28 grey, 10 classes (idx files)",
    "imagefolder": "DIR/train/<class>/* with test/<class>/* and/or val/<class>/*, or DIR/<class>/* with "
                   "--val-split; any image PIL opens, fitted to --image-size (--resize-mode)",
    "synthetic": "generated, learnable data of a chosen shape and class count (tests, smoke runs)",
}


def load_dataset(name: str, cfg: "TrainConfig", test_only: bool = False) -> "DataBundle":
    """Load the full dataset ``name`` with the options in ``cfg`` (no subsetting).

    ``test_only`` lets readers that decode file by file skip the training split
    (its normalization statistics are then not computed: the caller has its own).
    """
    try:
        return _load(name, cfg, test_only)
    except OSError as exc:  # unreadable folder, path too long, I/O error: the data, not the run
        where = exc.filename if exc.filename is not None else cfg.data_dir
        raise UserError(f"cannot read {name} data at {where!r} ({exc.strerror or exc}): check --data-dir") from None


def _load(name: str, cfg: "TrainConfig", test_only: bool = False) -> "DataBundle":
    from deepdive.data.pipeline import MNIST_MEAN_STD, DataBundle, Split, channel_mean_std

    if name == "cifar10":
        from deepdive.data.cifar import load_cifar10
        train, test, classes = load_cifar10(cfg.data_dir, download=cfg.download)
        mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    elif name in ("fashion-mnist", "mnist"):
        from deepdive.data.mnist import load_mnist_like
        train, test, classes = load_mnist_like(name, cfg.data_dir)
        mean, std = ((0.2860,), (0.3530,)) if name == "fashion-mnist" else MNIST_MEAN_STD
    elif name == "imagefolder":
        from deepdive.data.imagefolder import load_imagefolder_layout
        folder = load_imagefolder_layout(cfg.data_dir, cfg.image_size, strict=cfg.strict, test_only=test_only,
                                         workers=cfg.workers, max_bytes=int(cfg.max_image_mb * (1 << 20)),
                                         resize_mode=cfg.resize_mode, val_split=cfg.val_split, seed=cfg.seed)
        train, test, classes, val, source = folder.train, folder.test, folder.classes, folder.val, folder.source
        mean, std = channel_mean_std(train.head(2000 if not isinstance(train, Split) else len(train))) \
            if len(train) else ((0.5,) * 3, (0.25,) * 3)
    elif name == "synthetic":
        from deepdive.data.synthetic import make_synthetic
        spec = cfg.synthetic
        train, test, classes = make_synthetic(spec["shape"], spec["classes"], spec["train"], spec["test"])
        mean, std = channel_mean_std(train.images)
    else:  # the config validated the name already
        raise KeyError(name)
    if cfg.normalization == "mnist":
        mean, std = MNIST_MEAN_STD
    if name != "imagefolder":
        val, source = None, {}
    return DataBundle(name, train, test, list(classes), tuple(mean), tuple(std), val, source)


def prepare_data(cfg: "TrainConfig") -> "DataBundle":
    """The dataset a run trains on: loaded, cut to ``--limit-train/--limit-test``, validation held out."""
    from deepdive.data.pipeline import balanced_subset, stratified_split

    bundle = load_dataset(cfg.dataset, cfg)
    if cfg.classes:
        from deepdive.data.classes import select_classes
        select_classes(bundle, cfg.classes)
    for flag, limit, split in (("--limit-train", cfg.limit_train, "train"), ("--limit-test", cfg.limit_test, "test")):
        if limit and limit > len(getattr(bundle, split)):
            log.warning("warning: %s %d is more than the %d %s images: using all of them", flag, limit,
                        len(getattr(bundle, split)), split)
    if cfg.limit_train:
        bundle.train = balanced_subset(bundle.train, cfg.limit_train, cfg.seed)
    if cfg.limit_test:
        bundle.test = balanced_subset(bundle.test, cfg.limit_test, cfg.seed + 1)
    if cfg.val_split and bundle.source.get("data_layout") != "single":  # (a single folder's made its test split)
        bundle.train, bundle.val = stratified_split(bundle.train, cfg.val_split, cfg.seed + 2)
    return bundle
