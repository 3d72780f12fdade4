"""A run's data: its configuration turned into the plain options the readers take, then loaded and cut."""
from __future__ import annotations

from deepdive.config.train_config import TrainConfig
from deepdive.data.datasets import DataOptions
from deepdive.data.datasets import prepare_data as _prepare

OPTION_FIELDS = ("data_dir", "download", "image_size", "strict", "workers", "max_image_mb", "resize_mode", "val_split",
                 "seed", "synthetic", "normalization")


def data_options(cfg: TrainConfig, test_only: bool = False) -> DataOptions:
    """The readers' options of a run configured by ``cfg``."""
    return DataOptions(**{name: getattr(cfg, name) for name in OPTION_FIELDS}, test_only=test_only)


def prepare_data(cfg: TrainConfig):
    """The dataset the run trains on (``data.datasets.prepare_data`` with the run's choices)."""
    return _prepare(cfg.dataset, data_options(cfg), cfg.classes, cfg.limit_train, cfg.limit_test)
