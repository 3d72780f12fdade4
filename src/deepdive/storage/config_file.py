"""A ``--config`` file or a run's config.json: read bounded, parsed, and its types checked at the boundary."""
from __future__ import annotations

import json
from pathlib import Path

from deepdive.config.config_schema import check_config
from deepdive.errors import UserError


def read_config_file(path: str | Path) -> dict:
    """The JSON object of a config file, or one line saying what is wrong with it."""
    path = Path(path)
    try:
        from deepdive.storage.files import read_bounded
        values = json.loads(read_bounded(path, 1 << 20, "give the config.json of a run folder"))
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist: give the config.json of a run folder") from None
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, bad UTF-8, a 5,000-digit int
        raise UserError(f"config file {path} is not valid JSON ({exc}): give the config.json of a run folder") from None
    if not isinstance(values, dict):
        raise UserError(f"config file {path} does not hold a JSON object: give the config.json of a run folder")
    check_config(values, str(path))
    return values
