"""``deepdive train --resume RUN_DIR``: continue a run from its last checkpoint.

The run's stored config.json is the configuration (``config.resolve.resolve_resume``):
flags given alongside that would change the run are refused, one line per
difference, unless ``--force`` (which the run records). A completed run is
reported and left alone; a run with no checkpoint yet starts again from the
beginning with its saved config.

Nothing in the folder is written until everything - flags, every file's
schema, the model rebuilt, the checkpoint restored into it - has been
checked: a resume that fails leaves the folder byte for byte as it was. The
folder is locked (``storage.runs.FolderLock``) from the start, so two processes never
continue one run.
"""
from __future__ import annotations

import logging

log = logging.getLogger("deepdive")


def open_resume(run_dir: str, flags: dict, force: bool = False):
    """The locked run folder, its resolved config and the forced differences (nothing is written here)."""
    from deepdive.config.train_config import OLDER_RUNS
    from deepdive.storage.config_file import read_config_file
    from deepdive.config.resolve import resolve_resume
    from deepdive.storage.runs import CONFIG, RunDir
    from deepdive.training.ddp.torchrun import env_rank

    run = RunDir.open(run_dir, lock=env_rank() == 0)  # under torchrun rank 0 alone holds (and writes) the folder
    try:
        cfg, differences = resolve_resume({**OLDER_RUNS, **read_config_file(run.file(CONFIG))}, flags, force)
        run.model_info()  # validated now, though training rebuilds the model from the config
    except BaseException:
        run.close()
        raise
    return run, cfg, differences


def resume_run(run, cfg, differences: list[str], figures=None, make_hooks=None) -> dict:
    """Continue ``run`` (from ``open_resume``); ``figures`` and ``make_hooks`` as in ``run_training``."""
    from deepdive.storage.runs import STATE, SUMMARY
    from deepdive.storage.state_file import load_state
    from deepdive.training.setup import run_training

    try:
        summary = run.summary() if run.file(SUMMARY).exists() else {}
        state_path = run.file(STATE)
        if summary.get("status") == "completed" and not differences and state_path.exists():
            summary["already_completed"] = True  # (said once, by the caller: the train command prints it)
            run.close()
            return summary
        state = load_state(state_path) if state_path.exists() else None
    except BaseException:
        run.close()
        raise
    if state is None:
        log.info("%s has no checkpoint yet: starting it from the beginning with its saved config", run.path)
    return run_training(cfg, resume_state=state, run=run, forced=differences or None, figures=figures,
                        make_hooks=make_hooks)
