"""The run folder as a process other than rank 0 of a data-parallel run sees it: read, never written."""
from __future__ import annotations

from typing import Any

from deepdive.storage.runs import RunDir


class ReadOnlyRun(RunDir):
    """A run folder read as rank 0 leaves it; every write is rank 0's, so here it does nothing."""

    def write_json(self, name: str, obj: Any) -> None:
        pass

    def append_metrics(self, record: dict) -> None:
        pass

    def write_metrics_csv(self) -> None:
        pass

    def truncate_metrics(self, epochs: int) -> None:
        pass

    def remove_orphan_temp_files(self) -> list[str]:
        return []

    def read_json(self, name: str) -> Any:
        return super().read_json(name) if self.file(name).exists() else {}

    def commit(self) -> None:
        pass

    def abandon(self) -> str:
        return ""
