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
import os
import shutil
import time
from pathlib import Path
from typing import Any

from deepdive.atomic import write_json_atomic
from deepdive.errors import UserError

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


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @staticmethod
    def check_free(path: str | Path, overwrite: bool = False) -> None:
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path} is a file: choose a folder path")
        if path.exists() and not overwrite:
            raise UserError(f"output folder {path} already exists: choose another --out or add --overwrite")

    @classmethod
    def create(cls, path: str | Path, overwrite: bool = False) -> "RunDir":
        path = Path(path)
        cls.check_free(path, overwrite)
        if path.exists():
            shutil.rmtree(path)
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise UserError(f"cannot create output folder {path} ({exc.strerror}): choose a writable --out") from None
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"run folder {path} does not exist: give a folder made by `deepdive train`")
        for name in (CONFIG, MODEL_INFO):
            if not (path / name).is_file():
                raise UserError(f"{path} is not a run folder (no {name}): give a folder made by `deepdive train`")
        return cls(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.path / name, obj)

    def read_json(self, name: str) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path} is missing: the run folder is incomplete; retrain it") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{path} is not valid JSON ({exc}): the run folder is damaged; retrain it") from None

    def append_metrics(self, record: dict) -> None:
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_metrics(self, epochs: int) -> None:
        """Keep the records of the first ``epochs`` epochs: later ones belong to work a resume redoes."""
        from deepdive.atomic import write_bytes_atomic

        path = self.path / METRICS
        if not path.exists():
            return
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and _complete_record(line) and json.loads(line)["epoch"] <= epochs]
        write_bytes_atomic(path, "".join(line + "\n" for line in kept).encode())

    def metrics(self) -> list[dict]:
        path = self.path / METRICS
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _complete_record(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:  # a line torn by a crash mid-append
        return False
