"""``deepdive train`` from a resolved config: data, engine, model, optimizer, run folder, then the loop."""
from __future__ import annotations

import logging
import os
import random
import warnings
from dataclasses import dataclass
from typing import Any

from deepdive.version import __version__
from deepdive.config.train_config import TrainConfig
from deepdive.errors import Interrupted, RunFailed, UserError, WriteFailed, first_line

log = logging.getLogger("deepdive")


def seed_everything(seed: int) -> None:
    """One seed drives Python, NumPy and torch generators."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


@dataclass
class Components:
    engine: Any
    model: Any
    optimizer: Any
    model_options: dict  # every constructor argument beyond shape and classes (model.json records them)
    channels_last: bool
    freezer: Any = None  # training.finetune.Freezer with --freeze-backbone


def build_components(cfg: TrainConfig, bundle, initial_weights: bool = True) -> Components:
    """Engine, model and optimizer for ``cfg``, seeded: the same seed builds the same model. Without
    ``initial_weights`` (a resume: the checkpoint replaces them) --pretrained/--weights/--init-from are not
    read again, so a resumed run needs neither the cache nor the file nor the other run."""
    from deepdive.data.pipeline import Normalizer
    from deepdive.training.engines import make_engine
    from deepdive.models.registry import build_model, init_from_data, model_options
    from deepdive.config.specs import spec
    from deepdive.training.optim import build_optimizer, parameter_groups

    normalizer = Normalizer(bundle.mean, bundle.std, bundle.input_shape[0])
    channels_last = spec(cfg.model).channels_last if cfg.channels_last is None else cfg.channels_last
    engine = make_engine(cfg.engine, cfg.device, normalizer, channels_last=channels_last, amp=cfg.amp)
    seed_everything(cfg.seed)
    options = model_options(cfg.model, cfg.to_dict())
    check_model_fits(cfg.model, bundle, options)
    model = build_model(cfg.model, engine.nn, engine.F, bundle.input_shape, bundle.num_classes, **options)
    if getattr(model, "input_note", None):
        log.info("%s", model.input_note)
    init_from_data(cfg.model, model, normalizer(bundle.train.head(5000)), options)
    if initial_weights:
        _initial_weights(cfg, model, bundle)
    model = engine.build(model)
    check_forward(cfg.model, engine, model, bundle)
    head, freezer = set(), None
    if cfg.freeze_backbone or cfg.head_lr:
        from deepdive.training.finetune import Freezer, head_names
        head = head_names(model, bundle.num_classes)
        if cfg.freeze_backbone:
            freezer = Freezer(model, head, cfg.unfreeze_after)
            if not freezer.backbone:
                raise UserError(f"--model {cfg.model} is its head alone (one layer): there is no backbone to "
                                "freeze; drop --freeze-backbone")
    groups = parameter_groups(model, cfg.weight_decay, cfg.optimizer, cfg.decay_norm_and_bias, cfg.decoupled_wd,
                              head=head if cfg.head_lr else None)
    optimizer = build_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum, optim=engine.optim)
    if cfg.compile:
        import torch
        model = torch.compile(model)
    return Components(engine, model, optimizer, options, channels_last, freezer)


def _absolute_sources(cfg: TrainConfig, new_run: bool) -> None:
    """A new run's config.json records where its initial weights came from as absolute paths: a rerun with
    --config from another working directory finds the same files (a resume reads none of them)."""
    for key in ("init_from", "weights"):
        if new_run and getattr(cfg, key):
            setattr(cfg, key, os.path.abspath(getattr(cfg, key)))


def check_forward(name: str, engine, model, bundle) -> None:
    """One forward pass of two training images, in eval mode (no statistics move, no random number is
    drawn): an architecture that cannot take these images (a fixed input size, a kernel larger than the
    image) is one line before the run folder exists, not a traceback mid-run."""
    from deepdive.training.engines import evaluation

    c, h, w = bundle.input_shape
    try:
        with evaluation(model), engine.no_grad(), engine.autocast():
            model(engine.inputs(bundle.train.head(2)))
    except (RuntimeError, ValueError, AssertionError, IndexError) as exc:
        detail = first_line(exc, 160)
        raise UserError(f"--model {name} cannot take the data's {c}x{h}x{w} images ({detail}): use --image-size, "
                        "or drop --small-input, or choose another model") from None


def _initial_weights(cfg: TrainConfig, model, bundle) -> None:
    """--init-from RUN (another run's weights; with --pretrained that run's architecture and preprocessing
    are the pretrained ones) or --pretrained / --weights FILE (the library's weights)."""
    if cfg.init_from:
        from deepdive.models.registry import model_options
        from deepdive.training.finetune import init_from_run
        log.info("%s", init_from_run(model, cfg.model, list(bundle.classes), bundle.input_shape, cfg.init_from,
                                     model_options(cfg.model, cfg.to_dict())))
    elif cfg.pretrained or cfg.weights:
        from deepdive.models.external import load_pretrained
        log.info("%s", load_pretrained(model, cfg.model, cfg.weights, cfg.download))


def adopt_model_preprocessing(cfg: TrainConfig, bundle) -> dict | None:
    """With pretrained weights the model's own normalization replaces the data's (the weights were trained on
    inputs normalized that way); returns what model.json records, None otherwise."""
    if not (cfg.pretrained or cfg.weights):
        return None
    from deepdive.models.external import preprocessing

    meta = preprocessing(cfg.model)
    mean, std = meta["mean"], meta["std"]
    if bundle.input_shape[0] == 1:  # grey images are repeated to RGB inside the model: one channel's statistics
        mean, std = [sum(mean) / 3], [sum(std) / 3]
    bundle.mean, bundle.std = tuple(mean), tuple(std)
    log.info("pretrained preprocessing of %s (%s): mean %s, std %s", cfg.model, meta["weights"],
             ", ".join(f"{v:.3f}" for v in mean), ", ".join(f"{v:.3f}" for v in std))
    return {"weights": meta["weights"], "mean": list(mean), "std": list(std), "train_size": meta["crop_size"]}


def run_training(cfg: TrainConfig, overwrite: bool = False, resume_state: dict | None = None,
                 run=None, forced: list[str] | None = None, clock=None, hooks=None, figures=None,
                 make_hooks=None) -> dict:
    """Everything ``deepdive train`` does: data, engine, model, optimizer, run folder, the loop.

    With ``run`` (an existing, locked folder) and ``resume_state`` the run
    continues where its ``state.pt`` left it; the checkpoint is restored and
    checked before anything in the folder is written. ``clock`` and ``hooks``
    are for tests (see ``Stopwatch`` and ``training.hooks``); ``make_hooks`` makes the hook from the run's
    stop flag instead (the CLI's ``hooks.pause_hook_from_env``). ``figures`` draws RUN/figures/ when the run
    completes (``viz.run_figures.when_complete``; the floors above pass it, the loop draws nothing).
    Under torchrun this process is one of the run's (``ddp.torchrun.start``): rank 0 alone makes, locks and
    writes the run folder, the others read it (``ReadOnlyRun``).
    """
    from deepdive.training.run_data import prepare_data
    from deepdive.storage.read_only_run import ReadOnlyRun
    from deepdive.storage.runs import RunDir
    from deepdive.training.ddp.group import OneProcess
    from deepdive.training.ddp.torchrun import start, threads_per_process
    from deepdive.training.threads import busy_cores, set_threads, warn_if_oversubscribed

    _absolute_sources(cfg, new_run=resume_state is None)
    group = OneProcess()
    try:
        group = start(cfg)  # under torchrun: this process's place in the process group
        run = ReadOnlyRun(run.path) if not group.main and run is not None else run
        alone = group.world == 1
        busy = busy_cores() if alone else 0  # (the other processes of the run keep the cores busy)
        threads = set_threads(cfg.threads or (None if alone else threads_per_process(cfg.model, group.local_world)),
                              cfg.model, busy)
        if run is None and group.main:
            RunDir.check_free(cfg.out, overwrite)  # fail before the (slow) data loading
        if cfg.tensorboard:
            _require_tensorboard()
        bundle = prepare_data(cfg)
        check_fits_data(cfg, bundle)
        preprocessing = adopt_model_preprocessing(cfg, bundle)
        parts = build_components(cfg, bundle, initial_weights=resume_state is None)
        _move_data_to(parts.engine, bundle)
        if run is None:
            run = _create_run(cfg, bundle, parts, overwrite, preprocessing) if group.main else ReadOnlyRun(cfg.out)
        warn_if_oversubscribed(threads, busy)
        return _train(cfg, run, bundle, parts, resume_state, forced, threads, group, clock=clock, hooks=hooks,
                      make_hooks=make_hooks, figures=figures)
    except BaseException as exc:
        group.fail(exc)  # a setup that failed here stops the other processes at their agreement
        said = run.abandon() if run is not None else ""  # a run --overwrite replaced comes back if the new
        if said and isinstance(exc, (RunFailed, UserError)):  # one has no epoch's checkpoint yet
            raise (RunFailed if isinstance(exc, RunFailed) else UserError)(f"{exc}; {said}") from None
        if said:
            log.warning("the new run ended before its first epoch: %s", said)
        raise
    finally:
        if run is not None:
            run.close()
        group.close()


def _train(cfg, run, bundle, parts, resume_state, forced, threads, group, *, clock=None, hooks=None,
           make_hooks=None, figures=None) -> dict:
    from deepdive.storage.runs import CONFIG
    from deepdive.training.signals import StopFlag, catch_stop_signals
    from deepdive.training.loop import Trainer

    stop = StopFlag()
    with catch_stop_signals(stop):
        hooks = hooks or (make_hooks(stop) if make_hooks else None)
        trainer = Trainer(cfg, run, bundle, parts.engine, parts.model, parts.optimizer, stop, clock, hooks, group)
        trainer.freezer = parts.freezer
        summary = _resume_point(trainer, run, resume_state) if resume_state is not None else None
        trainer.group.agree(None)  # every process is set up (or all stop here), before rank 0 writes
        # -- everything is checked: from here on the run folder is written --
        if forced:
            run.write_json(CONFIG, cfg.to_dict())  # the changed run was built and restored: its config is in force
            from deepdive.storage.runs import MODEL_INFO
            run.write_json(MODEL_INFO, {**run.model_info(), **evaluation_settings(cfg)})  # --force --tta ...
        summary = _start_summary(cfg, run, bundle, trainer, summary, forced, threads)
        if cfg.tensorboard and trainer.group.main:
            from deepdive.training.tensorboard import open_writer
            engine = trainer.engine
            example = engine.inputs(bundle.train.head(2)) if engine.traceable else None
            trainer.tensorboard = open_writer(run.path, trainer.model, engine.traceable, example)
        try:
            summary = trainer.fit(summary)
        except (UserError, RunFailed) as exc:  # UserError mid-run: an unreadable image streamed with --strict
            if run.replaced is None:  # (a replacing run is removed by run_training: no status to record)
                _set_status(run, "failed")
            if isinstance(exc, WriteFailed):
                raise RunFailed(f"{exc}; the previous checkpoint is intact") from None
            raise
        except (Interrupted, KeyboardInterrupt):
            _set_status(run, "interrupted")
            log.warning("interrupted at epoch %d, step %d; resume with: deepdive train --resume %s",
                        trainer.state.epoch + 1, trainer.state.step_in_epoch, run.path)
            raise
        except OSError as exc:  # a folder removed under the run, ...: the run failed, the input was fine
            _set_status(run, "failed")
            raise RunFailed(f"writing to the run folder {run.path} failed ({exc.strerror or exc}): "
                            "free disk space or choose another --out; the previous checkpoint is intact") from None
    if cfg.figures and figures is not None and trainer.group.main:
        _draw_figures(figures, cfg, run, bundle, trainer)
    return summary


def _require_tensorboard() -> None:
    """--tensorboard without the package: one line naming the install command, before anything is written."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        from deepdive.training.tensorboard import INSTALL_HINT
        raise UserError(INSTALL_HINT) from None


def _draw_figures(figures, cfg, run, bundle, trainer) -> None:
    """RUN/figures/ when the run completes; a failure costs the pictures, never the finished run."""
    try:
        figures(run, trainer.engine, trainer.eval_model(), bundle.test, bundle.classes, cfg.tta, cfg.svg)
    except Exception as exc:  # noqa: BLE001 - a figure is not worth a failed run
        log.warning("warning: could not draw the run's figures (%s: %s); `deepdive report %s` retries",
                    type(exc).__name__, str(exc)[:120], run.path)


def _resume_point(trainer, run, saved: dict) -> dict:
    """Restore ``saved`` into the trainer and read the run's summary and metrics - all checked, nothing
    written: anything that does not fit is one ``UserError`` and the folder stays as it was."""
    from deepdive.storage.runs import MODEL_INFO, STATE

    summary = run.summary()
    summary["run"] = str(run.path)  # the folder may have moved since
    run.metrics()  # every record checked now, before metrics.jsonl is rewritten
    info, bundle = run.model_info(), trainer.bundle
    built = {"model": trainer.cfg.model, "classes": list(bundle.classes), "input_shape": list(bundle.input_shape)}
    for key, value in built.items():
        if info[key] != value:
            raise UserError(f"{run.file(MODEL_INFO)}: {key} is {info[key]!r} but this resume builds {value!r}: "
                            "a flag given with --force changes the model or data, or the file was damaged; resume "
                            "without such flags (or retrain)")
    try:
        with warnings.catch_warnings():  # a foreign state makes torch warn on its way to failing: one line only
            warnings.simplefilter("ignore")
            trainer.restore(saved)
    except UserError:
        raise
    except Exception as exc:  # another model's weights, a foreign optimizer state, a bad RNG state, ...
        detail = first_line(exc, 160)
        raise UserError(f"{run.file(STATE)} does not fit this run ({detail}): resume without the flags "
                        "that change the model or data, or delete state.pt to restart the run") from None
    return summary


def check_model_fits(name: str, bundle, options: dict) -> None:
    """The model's weights, gradients and two optimizer moments (float32) must fit the available memory."""
    from deepdive.config.machine import available_memory
    from deepdive.models.registry import state_size

    numbers = state_size(name, bundle.input_shape, bundle.num_classes, **options)
    needed, limit = numbers * 4 * 4, available_memory()
    if needed > limit:
        c, h, w = bundle.input_shape
        raise UserError(f"--model {name} on {c}x{h}x{w} images with {bundle.num_classes} classes has {numbers:,} "
                        f"parameters, {needed / 1e9:.1f} GB with gradients and optimizer state, more than the "
                        f"{limit / 1e9:.1f} GB available: use smaller images (--image-size) or a smaller model")


def check_fits_data(cfg: TrainConfig, bundle) -> None:
    """Options that depend on the data's size, checked once it is loaded (before any file is written)."""
    side = min(bundle.input_shape[1:])
    if cfg.augment != "none" and "crop" in cfg.augment and cfg.crop_pad >= side:
        raise UserError(f"--crop-pad {cfg.crop_pad} is not smaller than the {side}-pixel images: "
                        f"give at most {side - 1}")
    if cfg.batch_size > len(bundle.train):
        log.warning("warning: --batch-size %d is larger than the %d training images: each step takes them all",
                    cfg.batch_size, len(bundle.train))


def _move_data_to(engine, bundle) -> None:
    """On a GPU the whole dataset lives in GPU memory: no per-batch copies."""
    device = getattr(engine, "device", None)
    if getattr(device, "type", device) == "cuda":
        bundle.train, bundle.test = bundle.train.to(device), bundle.test.to(device)
        if bundle.val is not None:
            bundle.val = bundle.val.to(device)


def evaluation_settings(cfg: TrainConfig) -> dict:
    """How the run's weights are evaluated, recorded in model.json so that ``deepdive.load``, predict,
    evaluate and export rebuild a run from model.json alone (inference.model_loading.MODEL_SETTINGS)."""
    return {"tta": cfg.tta, "amp": cfg.amp, "ema": cfg.ema is not None}


def _create_run(cfg: TrainConfig, bundle, parts: Components, overwrite: bool, preprocessing: dict | None = None):
    from deepdive.storage.runs import CONFIG, MODEL_INFO, RunDir

    run = RunDir.create(cfg.out, overwrite=overwrite)
    run.write_json(CONFIG, cfg.to_dict())
    info = {"model": cfg.model, "engine": cfg.engine, "classes": bundle.classes,
            "input_shape": list(bundle.input_shape), "mean": list(bundle.mean), "std": list(bundle.std),
            "options": parts.model_options, "channels_last": parts.channels_last,
            "article_exact": cfg.article_exact,
            "resize_mode": cfg.resize_mode,  # how image files are fitted to input_shape (predict reads them so)
            **evaluation_settings(cfg)}
    if preprocessing:
        info["preprocessing"] = preprocessing  # the pretrained weights' own (mean/std above are these)
    run.write_json(MODEL_INFO, info)
    return run


def _start_summary(cfg, run, bundle, trainer, summary, forced, threads) -> dict:
    import torch

    resume = summary is not None
    if resume:
        removed = run.remove_orphan_temp_files()
        if removed:
            log.info("removed %d temp file(s) a killed write left in %s", len(removed), run.path)
        run.truncate_metrics(trainer.state.epoch)
        log.info("resuming %s at epoch %d, step %d", run.path, trainer.state.epoch + 1, trainer.state.step_in_epoch)
    else:
        run.truncate_metrics(0)
        summary = {"status": "running", "run": str(run.path), "model": cfg.model, "dataset": cfg.dataset,
                   "engine": cfg.engine, "epochs": 0, "test_accuracy": None, "test_loss": None,
                   "train_seconds": 0.0, "images_per_second": None}
    summary.update(train_examples=len(bundle.train), test_examples=len(bundle.test),
                   val_examples=len(bundle.val) if bundle.val is not None else 0,
                   device=str(getattr(trainer.engine, "device", "cpu")), threads=threads,
                   world_size=trainer.group.world,  # processes (information: a run resumes with any number)
                   torch_version=torch.__version__, deepdive_version=__version__)
    summary.update(bundle.source)  # an image folder's layout and the folder reported as test accuracy
    if forced:
        summary["resume_forced"] = summary.get("resume_forced", []) + forced
    if not resume:
        log.info("training %s on %s (%d train / %d test images, %s) -> %s", cfg.model, cfg.dataset,
                 len(bundle.train), len(bundle.test), summary["device"], run.path)
    return summary


def _set_status(run, status: str) -> None:
    from deepdive.storage.runs import SUMMARY

    try:
        summary = run.read_json(SUMMARY)
        summary["status"] = status
        run.write_json(SUMMARY, summary)
    except Exception as exc:  # the folder may be what failed; the original error matters more
        log.warning("warning: could not record status %r in %s (%s)", status, run.path, exc)
