"""``deepdive train --nproc N`` and the workers torchrun restarts: the CLI's side of data-parallel training.

Called by the CLI's train command only, this sits above ``training.setup`` and ``training.resume`` (a
restarted worker resumes its run folder through them); nothing in the loop imports it.
"""
from __future__ import annotations

import logging
import os
import signal

from deepdive.errors import UserError
from deepdive.storage.runs import RunDir
from deepdive.training.ddp.group import quiet
from deepdive.training.ddp.torchrun import check, env_rank, restart_count, threads_per_process
from deepdive.training.resume import open_resume

log = logging.getLogger("deepdive")


def restarted_run(cfg, out_given: bool):
    """A worker that torchrun restarted (TORCHELASTIC_RESTART_COUNT > 0) continues the run folder at --out from
    its last checkpoint: (locked run, its config, []) for ``resume_run``; None in a first attempt, or when the
    first attempt died before making the folder."""
    from deepdive.config.train_config import NOT_ALTERING
    from deepdive.storage.runs import CONFIG

    if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0 and not out_given:
        error = UserError("under torchrun --max-restarts give --out: a restarted process resumes the run folder "
                          "it names")
        raise quiet(error) if env_rank() else error
    if restart_count() == 0 or not cfg.out or not (RunDir(cfg.out).file(CONFIG)).is_file():
        return None
    run, saved, _ = open_resume(cfg.out, {})
    mine, theirs = cfg.to_dict(), saved.to_dict()
    for key in ("init_from", "weights"):  # the first attempt recorded them as absolute paths (training/setup.py)
        if mine.get(key):
            mine[key] = os.path.abspath(mine[key])
    changed = sorted(k for k in mine if k not in NOT_ALTERING | {"out"} and mine[k] != theirs.get(k))
    if changed:
        run.close()
        error = UserError(f"--out {cfg.out} holds a run of other settings ({', '.join(changed[:4])}): a restarted "
                          "process resumes only its own run")
        raise quiet(error) if env_rank() else error
    if env_rank() == 0:
        log.info("restart %d: resuming %s from its last checkpoint", restart_count(), run.path)
    return run, saved, []


def launch(argv: list[str], nproc: int, flags: dict, config_file: str | None, resume: str | None, force: bool,
           overwrite: bool) -> int | None:
    """``deepdive train ... --nproc N``: checks what every process would refuse (one line, before any starts),
    then runs this very command in N processes with torchrun's own launcher (``torch.distributed.run``,
    single node, ``--standalone``). None: N is 1, train in this process."""
    from deepdive.config.resolve import resolve_config
    from deepdive.storage.config_file import read_config_file

    if "RANK" in os.environ:
        raise UserError("--nproc starts torchrun itself: under torchrun, drop --nproc")
    if nproc < 1:
        raise UserError(f"--nproc {nproc} is invalid: give the number of processes, e.g. 2")
    if resume:
        run, cfg, _ = open_resume(resume, flags, force)
        run.close()
    else:
        cfg = resolve_config(flags, read_config_file(config_file) if config_file else None)
        RunDir.check_free(cfg.out, overwrite)
    if nproc == 1:
        return None
    check(cfg, nproc)
    forwarded = _without_nproc(argv)
    if not resume and "out" not in flags:
        forwarded += ["--out", str(cfg.out)]  # every process must name the folder rank 0 makes
    return _torchrun(["--standalone", "--nproc-per-node", str(nproc), "-m", "deepdive", *forwarded],
                     threads_per_process(cfg.model, nproc) if cfg.threads is None else cfg.threads)


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _torchrun(arguments: list[str], threads: int) -> int:
    """torchrun in this process; a failed worker's exit code comes back (its own message is above)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # torchrun would set 1 and warn about it
    for name in ("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # a worker's failure is said by the worker
    try:
        run(get_args_parser().parse_args(arguments))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        if code < 0:  # killed by a signal: nobody said anything
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            log.error("deepdive train: run failed: process %d was killed by %s (out of memory?)", rank, name)
            return 128 - code
        return code
    except SignalException as exc:  # SIGINT/SIGTERM here: torchrun passed it on; the workers checkpointed
        return 128 + int(exc.sigval)
    return 0
