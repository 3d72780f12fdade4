"""Streaming an image folder too large for memory: a DataLoader with ``-j`` workers.

Batches come out as the in-memory pipeline's do (uint8 NCHW + labels, in the
epoch's order), so augmentation, normalization and the loop are unchanged;
only the decoding moves into worker processes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class _FileDataset(torch.utils.data.Dataset):
    def __init__(self, files: list[Path], size: int):
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from deepdive.data.imagefolder import UnreadableImage, load_image

        try:
            array = np.array(load_image(self.files[i], (self.size, self.size)))
        except UnreadableImage:  # scanned as readable, unreadable now: a black image keeps the batch shape
            array = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous(), i


class StreamingSplit:
    """A split whose images stay on disk; ``labels`` are in memory."""

    def __init__(self, files: list[Path], labels: torch.Tensor, size: int, workers: int):
        self.files, self.labels, self.size, self.workers = list(files), labels, size, workers

    def __len__(self) -> int:
        return len(self.files)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def subset(self, index: torch.Tensor) -> "StreamingSplit":
        return StreamingSplit([self.files[i] for i in index.tolist()], self.labels[index], self.size, self.workers)

    def to(self, device) -> "StreamingSplit":
        return self  # batches move to the device as they are formed

    def head(self, n: int) -> torch.Tensor:
        images, _ = next(iter(self._loader(torch.arange(min(n, len(self))), min(n, len(self)))))
        return images

    def _loader(self, order: torch.Tensor, batch_size: int):
        return torch.utils.data.DataLoader(_FileDataset(self.files, self.size), batch_size=batch_size,
                                           sampler=order.tolist(), num_workers=self.workers,
                                           persistent_workers=False)

    def batches(self, batch_size: int, order: torch.Tensor | None, start_batch: int, with_index: bool):
        if order is None:
            order = torch.arange(len(self))
        order = order[start_batch * batch_size:]
        for images, idx in self._loader(order, batch_size):  # idx: each image's position in this split
            labels = self.labels[idx]
            yield (images, labels, idx) if with_index else (images, labels)
