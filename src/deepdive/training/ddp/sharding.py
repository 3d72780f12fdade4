"""The data one process of a data-parallel run takes: its share of each global batch of the epoch's order.

Evaluation splits are shared too, in contiguous slices (``ProcessGroup.eval_share``); the random numbers
of a step are drawn for the whole global batch and each process keeps its own rows (the loop hands the
augmenter its ``rows``; dropout: ``layers.GlobalBatchDropout``).
"""
from __future__ import annotations

from deepdive.errors import UserError

STREAMED = ("this image folder is streamed from disk (too large for memory), which distributed training does not "
            "do: give a smaller --image-size so that it fits, or train in one process")


class ShardedSplit:
    """A training split as one process steps through it: each global batch of the epoch's order, this process's
    share of it. ``iterate_batches`` hands a split that is not an in-memory ``Split`` to its own ``batches``.
    ``group`` is the process group (``share(n)``: this process's [lo, hi) of n items)."""

    def __init__(self, split, group):
        from deepdive.data.pipeline import Split

        if not isinstance(split, Split):
            raise UserError(STREAMED)
        self.split, self.group = split, group

    def __len__(self) -> int:
        return len(self.split)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.split.images.shape[1:])  # type: ignore[return-value]

    @property
    def labels(self):
        return self.split.labels

    def head(self, n: int):
        return self.split.head(n)

    def to(self, device) -> "ShardedSplit":
        return ShardedSplit(self.split.to(device), self.group)

    def batches(self, batch_size: int, order, start_batch: int, with_index: bool):
        import torch

        split = self.split
        if order is None:
            order = torch.arange(len(split))
        for start in range(start_batch * batch_size, len(split), batch_size):
            idx = order[start:start + batch_size]
            lo, hi = self.group.share(len(idx))
            idx = idx[lo:hi]
            at = idx.to(split.images.device)
            images, labels = split.images[at], split.labels[at]
            yield (images, labels, idx) if with_index else (images, labels)
