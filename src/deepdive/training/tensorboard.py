"""TensorBoard logging for ``--tensorboard``: scalars, histograms and the model graph of a run.

TensorBoard is an optional extra, so nothing here imports torch or tensorboard at module
level: ``deepdive --help`` stays fast and a missing package is reported only to the runs
that ask for it, as one line naming the install command.

Events go to ``<run folder>/tensorboard`` and nowhere else; SummaryWriter names its files
``events.out.tfevents.*``, which is all the run-folder checks expect to find there.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from deepdive.errors import UserError, first_line

log = logging.getLogger("deepdive")

FOLDER = "tensorboard"
INSTALL_HINT = ("--tensorboard needs the tensorboard package: pip install 'deepdive[tensorboard]' "
                "(or pip install tensorboard)")

# Epoch-record key -> TensorBoard tag. Loss and accuracy are grouped by quantity, so that
# TensorBoard draws train/test/val of one quantity in one section.
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "val_loss": "loss/val",
    "test_accuracy": "accuracy/test",
    "val_accuracy": "accuracy/val",
    "images_per_second": "throughput/images_per_second",
}


def open_writer(run_dir: Path, model, traceable: bool, example_input=None) -> "TensorBoardLog":
    """Start the run's TensorBoard log in ``run_dir/tensorboard``.

    For a ``traceable`` engine (torch: ``engine.traceable``) the model graph is traced from ``example_input``
    when one is given; a model that cannot be traced loses its graph (with a warning), never its training.
    The scratch engine has no traceable graph, so it gets scalars and histograms only.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is absent
        raise UserError(INSTALL_HINT) from None
    writer = SummaryWriter(log_dir=str(Path(run_dir) / FOLDER))
    if traceable and example_input is not None:
        try:
            _add_graph(writer, model, example_input)
        except Exception as e:  # tracing fails on data-dependent control flow, odd outputs, ...
            log.warning("tensorboard: the model graph was not written (tracing failed: %s)", first_line(e, 200))
    return TensorBoardLog(writer)


def _add_graph(writer, model, example_input) -> None:
    """Trace the graph quietly: torch prints tracing errors to stdout (which carries the CLI's JSON)
    and warns that jit tracing is deprecated, neither of which is the user's business."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        writer.add_graph(model, example_input)


def _as_array(value) -> np.ndarray:
    """A parameter or gradient as a NumPy array: scratch ones already are, torch ones may be bf16 on a GPU."""
    if isinstance(value, np.ndarray):
        return value
    return value.detach().float().cpu().numpy()


class TensorBoardLog:
    """One run's TensorBoard writer; ``epoch`` after each epoch, ``close`` at the end (twice is harmless)."""

    def __init__(self, writer):
        self.writer = writer
        self.closed = False

    def epoch(self, epoch: int, record: dict, lr: float, model) -> None:
        """Write the epoch's metrics, learning rate and parameter histograms at step ``epoch``.

        Flushed at once, so that a TensorBoard watching the folder shows each epoch as it ends.
        """
        for key, tag in SCALAR_TAGS.items():
            value = record.get(key)
            if value is not None:
                self.writer.add_scalar(tag, float(value), epoch)
        if lr is not None:
            self.writer.add_scalar("lr", float(lr), epoch)
        for name, p in model.named_parameters():
            self._histogram(f"weights/{name}", p.data, epoch)
            if p.grad is not None:
                self._histogram(f"gradients/{name}", p.grad, epoch)
        self.writer.flush()

    def _histogram(self, tag: str, value, step: int) -> None:
        """Histograms refuse empty and non-finite arrays: skip those (a diverged run is stopped elsewhere)."""
        array = _as_array(value)
        if array.size == 0 or not np.isfinite(array).all():
            log.warning("tensorboard: %s skipped at epoch %d (empty or not finite)", tag, step)
            return
        self.writer.add_histogram(tag, array, step)

    def close(self) -> None:
        """Flush and close the event file."""
        if not self.closed:
            self.closed = True
            self.writer.flush()
            self.writer.close()
