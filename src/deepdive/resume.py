"""``deepdive train --resume RUN_DIR``: continue a run from its last checkpoint.

Flags given alongside are compared with the run's saved config: any that would
change the run is refused, one line per difference, unless ``--force`` (which
the run records). A completed run is reported and left alone; a run with no
checkpoint yet starts again from the beginning with its saved config.
"""
from __future__ import annotations

import logging

from deepdive.errors import UserError

log = logging.getLogger("deepdive")

NOT_ALTERING = {"data_dir", "threads"}  # where the data lives and how many cores: the run is the same


def resume_run(run_dir: str, given: dict, force: bool = False) -> dict:
    from deepdive.config import TrainConfig
    from deepdive.runs import CONFIG, STATE, SUMMARY, RunDir
    from deepdive.state import load_state
    from deepdive.train import run_training

    run = RunDir.open(run_dir)
    saved = TrainConfig.load(run.file(CONFIG)).to_dict()
    if "out" in given:
        raise UserError("--out cannot be combined with --resume: the run continues in its own folder")
    differences = [f"--{key.replace('_', '-')} {value!r} differs from the run's {saved.get(key)!r}"
                   for key, value in given.items() if key not in NOT_ALTERING and saved.get(key) != value]
    if differences and not force:
        raise UserError("\n".join(f"{d}: drop it to resume as saved, or add --force to change the run"
                                  for d in differences))
    values = {**saved, **given}
    cfg = TrainConfig.from_dict(values)
    summary = run.read_json(SUMMARY) if run.file(SUMMARY).exists() else {}
    state_path = run.file(STATE)
    if summary.get("status") == "completed" and not differences and state_path.exists():
        log.info("%s already completed %s epoch(s): nothing to resume", run.path, summary.get("epochs"))
        summary["already_completed"] = True
        return summary
    if differences:
        run.write_json(CONFIG, cfg.to_dict())  # the config now in force, as --force asked
    state = load_state(state_path) if state_path.exists() else None
    if state is None:
        log.info("%s has no checkpoint yet: starting it from the beginning with its saved config", run.path)
    return run_training(cfg, resume_state=state, run=run, forced=differences or None)
