"""In-memory datasets and the batch pipeline.

Every dataset is decoded once into a uint8 image tensor (N, C, H, W) and an
int64 label tensor (N,). Batches are slices of those tensors, shuffled by a
seeded generator, and turned into normalized floats one whole batch at a time:
no per-image Python work, so the same pipeline can later live on the GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from deepdive.errors import UserError

MNIST_MEAN_STD = ((0.1307,), (0.3081,))  # what the article's script uses, on CIFAR-10 too


@dataclass
class Split:
    """One split held in memory: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError("images must be a uint8 tensor shaped (N, C, H, W)")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be an int64 tensor shaped (N,)")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(self.images[index], self.labels[index])

    def head(self, n: int) -> torch.Tensor:
        return self.images[:n]

    def to(self, device) -> "Split":
        """The same split held on ``device`` (the GPU, when training there): batches never cross the bus."""
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class DataBundle:
    """A dataset ready to train on: both splits, class names, normalization."""

    name: str
    train: Split
    test: Split
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val: Split | None = None  # held out of train by --val-split, or an image folder's val/
    source: dict = field(default_factory=dict)  # image folders: the layout and the folder reported (summary.json)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        if not isinstance(self.train, Split):
            return self.train.image_shape
        return tuple(int(s) for s in self.train.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def channel_mean_std(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1], in float64 chunks."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk].to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def balanced_subset(split: Split, n: int, seed: int) -> Split:
    """N examples with classes as equal as the data allows, the same for the same seed.

    Each class contributes floor(N / classes) examples (one more for the first
    N mod classes classes, in a seeded order); a class with too few examples
    gives all it has and the others make up the difference.
    """
    if n >= len(split):
        return split
    gen = torch.Generator().manual_seed(seed)
    labels = split.labels
    classes = torch.unique(labels)
    pools = [torch.nonzero(labels == c).flatten() for c in classes]
    pools = [p[torch.randperm(len(p), generator=gen)] for p in pools]
    take = [0] * len(pools)
    remaining = n
    while remaining > 0:
        open_classes = [i for i, p in enumerate(pools) if take[i] < len(p)]
        share, extra = divmod(remaining, len(open_classes))
        order = torch.randperm(len(open_classes), generator=gen).tolist()
        for rank, j in enumerate(order):
            i = open_classes[j]
            want = share + (1 if rank < extra else 0)
            got = min(want, len(pools[i]) - take[i])
            take[i] += got
            remaining -= got
    index = torch.cat([p[:t] for p, t in zip(pools, take)])
    index = index[torch.randperm(len(index), generator=gen)]
    return split.subset(index)


def stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out ``fraction`` of each class (at least one example per class that has two or more)."""
    gen = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in torch.unique(split.labels):
        members = torch.nonzero(split.labels == c).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        n_held = min(len(members) - 1, max(1, round(fraction * len(members)))) if len(members) > 1 else 0
        held.append(members[:n_held])
        keep.append(members[n_held:])
    keep_idx, held_idx = torch.cat(keep).sort().values, torch.cat(held).sort().values
    return split.subset(keep_idx), split.subset(held_idx)


def per_channel(mean, std, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) with one value per channel: a one-value pair (grey statistics) is broadcast to every one."""
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) == 1 and len(std) == 1:
        mean, std = mean * channels, std * channels
    if len(mean) != channels or len(std) != channels:
        raise UserError(f"normalization has {len(mean)} channels but the images have {channels}: "
                        "use a model trained on images with the same number of channels")
    return mean, std


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 ``(x / 255 - mean) / std``: the one normalization of deepdive. The loop's engines
    and the predictor call it through ``Normalizer``; the exported model (``inference/export.py``) traces this
    very function on its own buffers, which move with the module to any device."""
    return (images.to(torch.float32) / 255.0 - mean) / std


class Normalizer:
    """uint8 batch -> float32 ``(x / 255 - mean) / std`` (``normalize``), done on whole batches, on the batch's
    device. A one-value mean/std (grey statistics) is broadcast to every channel (``per_channel``)."""

    def __init__(self, mean, std, channels: int):
        mean, std = per_channel(mean, std, channels)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(images, self.mean.to(images.device), self.std.to(images.device))


def iterate_batches(split: Split, batch_size: int, *, shuffle: bool = False,
                    generator: torch.Generator | None = None, order: torch.Tensor | None = None,
                    start_batch: int = 0, with_index: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield (uint8 images, labels) batches; the last may be smaller, as in DataLoader.

    ``order`` fixes the epoch's permutation (a resumed epoch replays it from
    ``start_batch``); otherwise ``shuffle`` draws one from ``generator``.
    """
    n = len(split)
    if order is None and shuffle:
        order = torch.randperm(n, generator=generator)
    if not isinstance(split, Split):  # a StreamingSplit decodes its batches in DataLoader workers
        yield from split.batches(batch_size, order, start_batch, with_index)
        return
    for start in range(start_batch * batch_size, n, batch_size):
        if order is None:
            batch = split.images[start:start + batch_size], split.labels[start:start + batch_size]
            idx = torch.arange(start, min(start + batch_size, n))
        else:
            idx = order[start:start + batch_size]
            batch = split.images[idx.to(split.images.device)], split.labels[idx.to(split.labels.device)]
        yield (*batch, idx) if with_index else batch


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size
