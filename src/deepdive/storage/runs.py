"""The run folder: everything a run leaves behind, written so that it can be reloaded.

    config.json     the resolved TrainConfig (``deepdive train --config`` re-runs it)
    model.json      what rebuilding and using the model needs (``deepdive.load`` reads it alone): model,
                    constructor options, classes, input shape, normalization, tta, amp, ema
    metrics.jsonl   one JSON object per epoch
    summary.json    status (running | completed | failed | interrupted) and final figures
    model.safetensors  the weights of the latest completed epoch (what evaluate and predict load)
    best.safetensors   the best epoch's weights (by validation accuracy with --val-split, else test)
    state.pt        the training state for exact resume (loads with torch.load(weights_only=True))
    model.onnx, model.ts, model.pt2 (each with NAME.json)   written by ``deepdive export`` when asked

JSON files are replaced atomically; metrics.jsonl is appended a whole line at a time.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from deepdive.storage.atomic import is_temp_file, write_json_atomic
from deepdive.errors import UserError, WriteFailed

log = logging.getLogger("deepdive")

CONFIG, MODEL_INFO, METRICS, SUMMARY, WEIGHTS, BEST, STATE = (
    "config.json", "model.json", "metrics.jsonl", "summary.json", "model.safetensors", "best.safetensors",
    "state.pt")


# Everything a run folder may hold, and what its sub-folders may hold; a folder holding anything
# else is not replaced by --overwrite.
METRICS_CSV, REPORT = "metrics.csv", "report.html"
EXPORTS = ("model.onnx", "model.ts", "model.pt2")  # `deepdive export`'s default files, each with a NAME.json beside
RUN_FILES = {CONFIG, MODEL_INFO, METRICS, SUMMARY, WEIGHTS, BEST, STATE, REPORT, METRICS_CSV,
             *EXPORTS, *(f"{name}.json" for name in EXPORTS)}
RUN_FOLDERS = {"checkpoints": re.compile(r"epoch-\d+\.safetensors"), "figures": re.compile(r"[\w.-]+\.(png|svg)"),
               "tensorboard": re.compile(r"events\.out\.tfevents\.[\w.-]+")}


def is_run_temp_file(name: str) -> bool:
    """A temp file ``write_atomic`` left beside one of a run's files (only a killed write leaves one)."""
    return is_temp_file(name) and any(name.startswith(f".{known}.") for known in RUN_FILES)


def is_run_folder(path: Path) -> bool:
    """A folder deepdive made: a config.json that reads as a run's config, and nothing but run files
    (regular files, not links), temp files of theirs, and the run's sub-folders holding only what
    deepdive writes there - so a folder of anyone else's, or a run holding a file of yours, or another
    run nested inside, is never taken for one."""
    def only(folder: Path, allowed) -> bool:
        return all(allowed(entry) for entry in os.scandir(folder))

    def top(entry) -> bool:
        if entry.name in RUN_FOLDERS and entry.is_dir(follow_symlinks=False):
            pattern = RUN_FOLDERS[entry.name]
            return only(Path(entry.path), lambda e: e.is_file(follow_symlinks=False) and (
                bool(pattern.fullmatch(e.name)) or is_temp_file(e.name)))
        return entry.is_file(follow_symlinks=False) and (entry.name in RUN_FILES or is_run_temp_file(entry.name))

    try:
        return (path / CONFIG).is_file() and only(path, top) and _reads_as_run_config(path / CONFIG)
    except OSError:
        return False


def _reads_as_run_config(path: Path) -> bool:
    import dataclasses

    from deepdive.config.train_config import TrainConfig

    try:
        values = json.loads(read_text_bounded(path, MAX_JSON_BYTES))
    except (UserError, ValueError, RecursionError):
        return False
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return isinstance(values, dict) and {"model", "dataset"} <= set(values) <= known


def leftovers(path: Path) -> list[Path]:
    """Runs an earlier --overwrite of ``path`` set aside and never deleted (that process was killed)."""
    return sorted(path.parent.glob(f".{path.name[:100]}.replaced-*"))


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
        aside (still locked) and deleted by ``commit()`` once the new run has its first epoch's checkpoint;
        ``abandon()`` puts it back if the new run fails before that."""
        path = Path(path)
        cls.check_free(path, overwrite)
        _warn_of_leftovers(path)
        aside = None
        if path.is_dir():
            old = FolderLock(path)
            if _claimable(path, overwrite):  # checked again under the lock: nobody changes it now
                aside = (path.with_name(f".{path.name[:100]}.replaced-{os.getpid()}-{time.time_ns()}"), old)
                os.rename(path, aside[0])
                log.info("replacing run folder %s (the old run is kept at %s until the new one's first "
                         "checkpoint)", path, aside[0])
            else:
                run = cls(path, old)  # an empty folder: use it as it is
                return run
        kept = f"; the old run is kept at {aside[0]}" if aside else ""
        try:
            path.mkdir(parents=True)
            lock = FolderLock(path)
        except FileExistsError:  # another process made it between our rename and now
            raise UserError(f"{path} was just created by another process: choose another --out{kept}") from None
        except UserError as exc:  # ... or locked the folder we just made
            raise UserError(f"{exc}{kept}") from None
        except OSError as exc:
            raise UserError(f"cannot create output folder {path} ({exc.strerror}): choose a writable --out"
                            f"{kept}") from None
        run = cls(path, lock)
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
        if lock:
            _warn_of_leftovers(path)
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

    def subfolder(self, name: str) -> Path:
        """RUN/NAME as a real folder inside the run (made if absent). A symbolic link there - to anywhere - or a
        file of that name is refused: what deepdive writes stays inside the run folder."""
        path = self.path / name
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            what = f"a symbolic link to {os.readlink(path)}" if path.is_symlink() else "not a folder"
            raise UserError(f"{path} is {what}: deepdive writes only inside the run folder; remove it (deepdive "
                            "makes the folder) and run the command again")
        path.mkdir(exist_ok=True)
        return path

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
        from deepdive.config.train_config import OLDER_RUNS, TrainConfig
        from deepdive.storage.config_file import read_config_file
        return TrainConfig.from_dict({**OLDER_RUNS, **read_config_file(self.file(CONFIG))})

    def model_info(self) -> dict:
        from deepdive.storage.schemas import check_model_info
        info = self.read_json(MODEL_INFO)
        check_model_info(info, str(self.file(MODEL_INFO)))
        return info

    def summary(self) -> dict:
        from deepdive.storage.schemas import check_summary
        summary = self.read_json(SUMMARY)
        check_summary(summary, str(self.file(SUMMARY)))
        return summary

    def remove_orphan_temp_files(self) -> list[str]:
        """Temp files a killed write left behind (never a complete file: those were renamed into place)."""
        removed = []
        for name in os.listdir(self.path):
            if is_run_temp_file(name):
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
        self.write_metrics_csv()

    def write_metrics_csv(self) -> None:
        """metrics.csv: metrics.jsonl as a table (columns in order of first appearance; empty: absent/null)."""
        import csv
        import io

        from deepdive.storage.atomic import write_bytes_atomic

        records = self.metrics()
        columns = list(dict.fromkeys(key for record in records for key in record))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in records)
        write_bytes_atomic(self.path / METRICS_CSV, buffer.getvalue().encode())

    def truncate_metrics(self, epochs: int) -> None:
        """Keep the records of the first ``epochs`` epochs: later ones belong to work a resume redoes."""
        from deepdive.storage.atomic import write_bytes_atomic

        path = self.path / METRICS
        if not path.exists():
            return
        kept = [line for line in self.metric_lines() if line[1]["epoch"] <= epochs]
        write_bytes_atomic(path, "".join(text + "\n" for text, _ in kept).encode())
        self.write_metrics_csv()

    def metric_lines(self) -> list[tuple[str, dict]]:
        """(line, record) for every complete, well-formed line of metrics.jsonl."""
        from deepdive.storage.schemas import check_metrics_record

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
    """A run folder's text file: a regular file, at most ``limit`` bytes, UTF-8 - or one ``UserError`` line."""
    from deepdive.storage.files import read_bounded
    data = read_bounded(path, limit, "the run folder is damaged; retrain it")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}): the run folder "
                        "is damaged; retrain it") from None


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
    if path.is_symlink():
        raise UserError(f"--overwrite refused: {path} is a symbolic link; nothing was deleted: give the folder "
                        f"it points to ({path.resolve()}) as --out")
    if Path.cwd().resolve().is_relative_to(path.resolve()):
        raise UserError(f"--overwrite refused: {path} holds the current folder; nothing was deleted: "
                        "run deepdive from outside it")
    if not is_run_folder(path):
        foreign = sorted(n for n in names if n not in RUN_FILES and n not in RUN_FOLDERS)
        shown = ", ".join(foreign[:3]) or "files deepdive did not write"
        raise UserError(f"--overwrite refused: {path} is not a deepdive run folder (it holds {shown}); "
                        "nothing was deleted: choose another --out")
    return True


def _warn_of_leftovers(path: Path) -> None:
    for aside in leftovers(path):
        try:
            FolderLock(aside).release()  # held: a live --overwrite is replacing it right now
        except (UserError, OSError):
            continue
        log.warning("warning: %s is a run an earlier --overwrite of %s set aside and never deleted (that "
                    "process was killed before the new run's first epoch): move it back or delete it",
                    aside, path)


def _complete_record(line: str) -> dict | None:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):  # a line torn by a crash mid-append
        return None
