"""The run folder: everything a run leaves behind, written so that it can be reloaded.

    config.json     the resolved TrainConfig (``deepdive train --config`` re-runs it)
    model.json      what prediction needs: model, classes, input shape, normalization
    metrics.jsonl   one JSON object per epoch
    summary.json    status (running | completed | failed | interrupted) and final figures
    model.safetensors  the weights of the latest completed epoch (what evaluate and predict load)
    best.safetensors   the best epoch's weights (by validation accuracy with --val-split, else test)
    state.pt        the training state for exact resume (loads with torch.load(weights_only=True))

JSON files are replaced atomically; metrics.jsonl is appended a whole line at a time.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from deepdive.atomic import is_temp_file, write_json_atomic
from deepdive.errors import UserError, WriteFailed

log = logging.getLogger("deepdive")

CONFIG, MODEL_INFO, METRICS, SUMMARY, WEIGHTS, BEST, STATE = (
    "config.json", "model.json", "metrics.jsonl", "summary.json", "model.safetensors", "best.safetensors",
    "state.pt")


def default_run_dir(model: str, dataset: str, root: str = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{model}-{dataset}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


# Everything a run folder may hold; a folder holding anything else is not replaced by --overwrite.
RUN_FILES = {CONFIG, MODEL_INFO, METRICS, SUMMARY, WEIGHTS, BEST, STATE, "checkpoints", "figures", "report.html",
             "metrics.csv", "tensorboard"}


def is_run_folder(path: Path) -> bool:
    """A folder deepdive made: it has config.json and nothing but run files (and temp files of theirs)."""
    names = os.listdir(path)
    return CONFIG in names and all(n in RUN_FILES or is_temp_file(n) for n in names)


class FolderLock:
    """An exclusive ``flock`` on the folder itself, held while the process lives.

    No file is created or changed; the kernel drops the lock when the process
    ends however it ends, so a crashed run never blocks the next one.
    """

    def __init__(self, path: Path):
        import fcntl

        self.fd: int | None = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise UserError(f"{path} is in use by another deepdive process (a run training or resuming there): "
                            "wait for it to end, or choose another --out") from None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None

    def __del__(self):
        self.release()


class RunDir:
    """A run folder. Made by ``create`` or opened for writing by ``open(..., lock=True)``, it is
    locked (``FolderLock``) until ``close()`` or the end of the process."""

    def __init__(self, path: str | Path, lock: FolderLock | None = None):
        self.path = Path(path)
        self.lock = lock
        self.replaced: tuple[Path, FolderLock] | None = None  # the old run --overwrite set aside

    @staticmethod
    def check_free(path: str | Path, overwrite: bool = False) -> None:
        """Refuse early (before slow data loading) what ``create`` would refuse; changes nothing."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path} is a file: choose a folder path")
        if path.is_dir():
            _claimable(path, overwrite)
            FolderLock(path).release()

    @classmethod
    def create(cls, path: str | Path, overwrite: bool = False) -> "RunDir":
        """A new, locked run folder at ``path``. With ``overwrite`` an existing run folder there is renamed
        aside (still locked) and deleted by ``commit()`` once the new run has its first checkpoint;
        ``abandon()`` puts it back if the new run fails before that."""
        path = Path(path)
        cls.check_free(path, overwrite)
        aside = None
        if path.is_dir():
            old = FolderLock(path)
            if _claimable(path, overwrite):  # checked again under the lock: nobody changes it now
                aside = (path.with_name(f".{path.name}.replaced-{os.getpid()}"), old)
                os.rename(path, aside[0])
                log.info("replacing run folder %s (the old run is kept at %s until the new one's first "
                         "checkpoint)", path, aside[0])
            else:
                run = cls(path, old)  # an empty folder: use it as it is
                return run
        try:
            path.mkdir(parents=True)
        except FileExistsError:  # another process made it between our rename and now
            if aside:
                log.warning("warning: the old run stays at %s", aside[0])
            raise UserError(f"{path} was just created by another process: choose another --out") from None
        except OSError as exc:
            raise UserError(f"cannot create output folder {path} ({exc.strerror}): choose a writable --out") from None
        run = cls(path, FolderLock(path))
        run.replaced = aside
        return run

    @classmethod
    def open(cls, path: str | Path, lock: bool = False) -> "RunDir":
        """An existing run folder; ``lock`` (to write into it) refuses one another process holds."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"{path} is a file, not a run folder: give a folder made by `deepdive train`")
        if not path.is_dir():
            raise UserError(f"run folder {path} does not exist: give a folder made by `deepdive train`")
        for name in (CONFIG, MODEL_INFO):
            if not (path / name).is_file():
                raise UserError(f"{path} is not a run folder (no {name}): give a folder made by `deepdive train`")
        return cls(path, FolderLock(path) if lock else None)

    def commit(self) -> None:
        """The new run has a checkpoint: the run it replaced can go."""
        if self.replaced:
            aside, lock = self.replaced
            self.replaced = None
            shutil.rmtree(aside, ignore_errors=True)
            lock.release()

    def abandon(self) -> str:
        """The new run failed before its first checkpoint: put the replaced run back in its place.
        Returns what happened, for the error message ("" when nothing was replaced)."""
        if not self.replaced:
            return ""
        aside, lock = self.replaced
        self.replaced = None
        try:
            shutil.rmtree(self.path)
            os.rename(aside, self.path)
            said = f"the previous run was put back in {self.path}"
        except OSError as exc:
            said = f"the previous run could not be put back ({exc.strerror}): it is kept at {aside}"
        lock.release()
        return said

    def close(self) -> None:
        if self.lock:
            self.lock.release()
            self.lock = None

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.path / name, obj)

    def read_json(self, name: str) -> Any:
        path = self.path / name
        try:
            text = read_text_bounded(path, MAX_JSON_BYTES)
            return json.loads(text)
        except FileNotFoundError:
            raise UserError(f"{path} is missing: the run folder is incomplete; retrain it") from None
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, bad UTF-8, a 5,000-digit int
            raise UserError(f"{path} is not valid JSON ({str(exc)[:120]}): the run folder is damaged; "
                            "retrain it") from None

    def config(self):
        """config.json as a validated ``TrainConfig``."""
        from deepdive.config import TrainConfig, read_config_file
        return TrainConfig.from_dict(read_config_file(self.file(CONFIG)))

    def model_info(self) -> dict:
        from deepdive.schemas import check_model_info
        info = self.read_json(MODEL_INFO)
        check_model_info(info, str(self.file(MODEL_INFO)))
        return info

    def summary(self) -> dict:
        from deepdive.schemas import check_summary
        summary = self.read_json(SUMMARY)
        check_summary(summary, str(self.file(SUMMARY)))
        return summary

    def remove_orphan_temp_files(self) -> list[str]:
        """Temp files a killed write left behind (never a complete file: those were renamed into place)."""
        removed = []
        for name in os.listdir(self.path):
            if is_temp_file(name) and any(name.startswith(f".{known}.") for known in RUN_FILES):
                try:
                    os.unlink(self.path / name)
                    removed.append(name)
                except OSError:
                    pass
        return removed

    def append_metrics(self, record: dict) -> None:
        try:
            with open(self.path / METRICS, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise WriteFailed(self.path / METRICS, exc) from None

    def truncate_metrics(self, epochs: int) -> None:
        """Keep the records of the first ``epochs`` epochs: later ones belong to work a resume redoes."""
        from deepdive.atomic import write_bytes_atomic

        path = self.path / METRICS
        if not path.exists():
            return
        kept = [line for line in self.metric_lines() if line[1]["epoch"] <= epochs]
        write_bytes_atomic(path, "".join(text + "\n" for text, _ in kept).encode())

    def metric_lines(self) -> list[tuple[str, dict]]:
        """(line, record) for every complete, well-formed line of metrics.jsonl."""
        from deepdive.schemas import check_metrics_record

        path = self.path / METRICS
        if not path.exists():
            return []
        lines = []
        for number, text in enumerate(read_text_bounded(path, MAX_JSON_BYTES).splitlines(), 1):
            if not text.strip():
                continue
            record = _complete_record(text)
            if record is None:
                continue  # a line torn by a crash mid-append
            check_metrics_record(record, f"{path} line {number}")
            lines.append((text, record))
        return lines

    def metrics(self) -> list[dict]:
        return [record for _, record in self.metric_lines()]


MAX_JSON_BYTES = 64 << 20  # a run's JSON files are kilobytes; a larger one is not deepdive's


def read_text_bounded(path: Path, limit: int) -> str:
    size = os.stat(path).st_size
    if size > limit:
        raise UserError(f"{path} is {size / 1e6:.0f} MB, far larger than deepdive writes: "
                        "the run folder is damaged; retrain it")
    with open(path, "rb") as f:
        return f.read(size + 1).decode()  # read(n) allocates n bytes up front: ask for what the file holds


def _claimable(path: Path, overwrite: bool) -> bool:
    """True: a run folder that --overwrite may replace; False: an empty folder to use as it is."""
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise UserError(f"cannot read output folder {path} ({exc.strerror}): choose another --out") from None
    if not names:
        return False
    if not overwrite:
        raise UserError(f"output folder {path} already exists: choose another --out or add --overwrite")
    if not is_run_folder(path):
        shown = ", ".join(sorted(n for n in names if n not in RUN_FILES)[:3])
        raise UserError(f"--overwrite refused: {path} is not a deepdive run folder (it holds {shown}); "
                        "nothing was deleted: choose another --out")
    return True


def _complete_record(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # a line torn by a crash mid-append
        return None
    return record
