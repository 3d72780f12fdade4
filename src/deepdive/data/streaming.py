"""Streaming an image folder too large for memory: a DataLoader with ``-j`` workers.

Batches come out as the in-memory pipeline's do (uint8 NCHW + labels, in the
epoch's order), so augmentation, normalization and the loop are unchanged;
only the decoding moves into worker processes.

The skip/strict contract is the in-memory one: files whose headers PIL cannot
read are skipped with the same warning, or refused with ``--strict``, before
training starts (``imagefolder._readable_headers``). A file that opens but
fails to decode (a truncated body) is found only when its batch is formed: it
is dropped from that batch with a warning naming it, or, with ``--strict``,
ends the run with the same refusal.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class _FileDataset(torch.utils.data.Dataset):
    def __init__(self, files: list[Path], size: int, max_bytes: int, resize_mode: str = "crop"):
        self.files, self.size, self.max_bytes, self.resize_mode = files, size, max_bytes, resize_mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from deepdive.data.images import UnreadableImage, load_image

        ok = True
        try:
            array = np.array(load_image(self.files[i], (self.size, self.size), max_bytes=self.max_bytes,
                                        resize_mode=self.resize_mode))
        except UnreadableImage:  # its header read, its body does not: a placeholder the batch then drops
            array, ok = np.zeros((self.size, self.size, 3), dtype=np.uint8), False
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous(), i, ok


class StreamingSplit:
    """A split whose images stay on disk; ``labels`` are in memory."""

    def __init__(self, files: list[Path], labels: torch.Tensor, size: int, workers: int, strict: bool = False,
                 max_bytes: int = 256 << 20, resize_mode: str = "crop"):
        self.files, self.labels, self.size, self.workers = list(files), labels, size, workers
        self.strict, self.max_bytes, self.resize_mode = strict, max_bytes, resize_mode
        self.dropped: set[int] = set()  # files found unreadable while streaming (warned about once each)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def subset(self, index: torch.Tensor) -> "StreamingSplit":
        return StreamingSplit([self.files[i] for i in index.tolist()], self.labels[index], self.size, self.workers,
                              self.strict, self.max_bytes, self.resize_mode)

    def to(self, device) -> "StreamingSplit":
        return self  # batches move to the device as they are formed

    def head(self, n: int) -> torch.Tensor:
        images, _, ok = next(iter(self._loader(torch.arange(min(n, len(self))), min(n, len(self)))))
        return images[ok]

    def _loader(self, order: torch.Tensor, batch_size: int):
        return torch.utils.data.DataLoader(_FileDataset(self.files, self.size, self.max_bytes, self.resize_mode),
                                           batch_size=batch_size,
                                           sampler=order.tolist(), num_workers=self.workers,
                                           persistent_workers=False)

    def batches(self, batch_size: int, order: torch.Tensor | None, start_batch: int, with_index: bool):
        if order is None:
            order = torch.arange(len(self))
        order = order[start_batch * batch_size:]
        for images, idx, ok in self._loader(order, batch_size):  # idx: each image's position in this split
            if not ok.all():
                self._unreadable(idx[~ok].tolist())
                images, idx = images[ok], idx[ok]
                if len(idx) == 0:
                    continue
            labels = self.labels[idx]
            yield (images, labels, idx) if with_index else (images, labels)

    def _unreadable(self, positions: list[int]) -> None:
        """The in-memory rule, applied as files turn out unreadable: warn once per file, or refuse (strict)."""
        from deepdive.data.images import report_unreadable

        new = [p for p in positions if p not in self.dropped]
        self.dropped.update(new)
        report_unreadable([str(self.files[p]) for p in new], self.strict, "found while streaming")
