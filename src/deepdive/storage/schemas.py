"""One schema per file deepdive reads back from a run folder: model.json, summary.json, metrics.jsonl, state.pt
(config.json's is config/config_schema.py), in the plain-data schema language of config/schema.py."""
from __future__ import annotations

from deepdive.config.config_schema import config_schema
from deepdive.config.names import MAX_CLASS_NAME, MAX_CLASSES, TTA_MODES
from deepdive.config.specs import ENGINES
from deepdive.config.schema import Check, Count, Fields, ListOf, MapOf, Opt, Positive, Shape, Tensor, check
from deepdive.config.specs import MODELS, spec as model_spec, split_name

RUN_DAMAGED = "the run folder is damaged; retrain it (or restore the file deepdive wrote)"
READABLE_FORMATS = (1, 2)  # state.pt: 2, the loop's fields under "loop" (TrainState); 1, the same at the top level


def check_model_info(info, where: str) -> None:
    """model.json: what rebuilding the model needs, nothing a model constructor could choke on."""

    schema = Fields({
        "model": Check(str, lambda v: v in MODELS or split_name(v) is not None,
                       f"one of {', '.join(MODELS)}, tv:<name> or timm:<name>"),
        "engine": Check(str, lambda v: v in ENGINES, f"one of {', '.join(ENGINES)}"),
        "classes": ListOf(Check(str, lambda v: 0 < len(v) <= MAX_CLASS_NAME, f"a name of 1..{MAX_CLASS_NAME} "
                                "characters"), 2, MAX_CLASSES),
        "input_shape": Shape,
        "mean": ListOf(float, 1, 3),
        "std": ListOf(Check(float, lambda v: v > 0, "a number > 0"), 1, 3),
        "options": dict,
        "channels_last": bool,
        "article_exact": bool,
        "resize_mode": Check(str, lambda v: v in ("crop", "squash"), "crop or squash"),  # absent: squash (older)
        # how the run evaluates the model (absent in older runs: their config.json says; inference.model_loading.model_settings)
        "tta": Check(str, lambda v: v in TTA_MODES, f"one of {', '.join(TTA_MODES)}"),
        "amp": bool,
        "ema": bool,  # model.safetensors holds the exponential moving average of the weights
    }, frozenset({"model", "classes", "input_shape", "mean", "std"}))
    check(info, schema, where, RUN_DAMAGED)
    channels = info["input_shape"][0]
    for key in ("mean", "std"):  # one value per channel, or one for all of them (the article's MNIST figures)
        if len(info[key]) not in (1, channels):
            check(info[key], ListOf(float, channels, channels), where, RUN_DAMAGED, key)
    spec = model_spec(info["model"])
    allowed = set(spec.config_options) | set(spec.defaults) | ({"article_exact"} if spec.article_exact else set())
    config = config_schema().fields
    options = Fields({k: config[k] for k in allowed}, open=False)
    check(info.get("options", {}), options, where, RUN_DAMAGED, "options")


Fraction = Opt(Check(float, lambda v: 0 <= v <= 1, "a fraction in 0..1"))  # accuracies, as every file holds them
Seconds = Opt(Check(float, lambda v: v >= 0, "a number of seconds >= 0"))
Rate = Opt(Check(float, lambda v: v >= 0, "a number >= 0"))

SUMMARY = Fields({"status": Check(str, lambda v: len(v) <= 40, "a short word"), "epochs": Count,
                  "resume_forced": ListOf(Check(str, lambda v: len(v) <= 1000, "a line"), 0, 1000),
                  "test_accuracy": Fraction, "test_accuracy_train_mode": Fraction, "val_accuracy": Fraction,
                  "test_loss": Opt(float), "train_loss": Opt(float), "train_seconds": Seconds, "eval_seconds": Seconds,
                  "images_per_second": Rate, "best_value": Opt(float), "best_epoch": Opt(Count)})
# metrics.jsonl, one record per epoch (training/loop.py's epoch_record): every key the loop writes, typed and ranged
METRICS_RECORD = Fields({"epoch": Positive, "train_loss": float, "train_loss_last_block": Opt(float),
                         "test_loss": Opt(float), "test_accuracy": Fraction, "seconds": Seconds,
                         "images_per_second": Rate, "lr": Rate, "steps": Count, "val_loss": Opt(float),
                         "val_accuracy": Fraction, "test_accuracy_train_mode": Fraction}, frozenset({"epoch"}))


def check_summary(summary, where: str) -> None:
    check(summary, SUMMARY, where, RUN_DAMAGED)


def check_metrics_record(record, where: str) -> None:
    check(record, METRICS_RECORD, where, RUN_DAMAGED)


_LOOP = Fields({
    "epoch": Count, "step_in_epoch": Count, "global_step": Count, "images_seen": Count,
    "order": Opt(Tensor), "loss_sum": float, "seen": Count, "epoch_train_start": float,
    "best": Fields({"metric": str, "value": Opt(float), "epoch": Opt(int)}, frozenset({"metric", "value", "epoch"})),
    "target": Opt(dict), "finished_early": bool, "clocks": MapOf(float), "first_loss": Opt(float),
    "block_loss_sum": float, "block_steps": Count, "last_block_loss": Opt(float),
}, frozenset({"epoch", "step_in_epoch", "global_step", "order"}))
_RNG = Fields({
    "python": Fields({"version": int, "internal": ListOf(int, 625, 625), "gauss": Opt(float)},
                     frozenset({"version", "internal", "gauss"})),
    "numpy": Fields({"kind": str, "keys": Tensor, "pos": int, "has_gauss": int, "cached_gaussian": float},
                    frozenset({"kind", "keys", "pos", "has_gauss", "cached_gaussian"})),
    "torch": Tensor, "data": Tensor, "cuda": list,
}, frozenset({"python", "numpy", "torch", "data"}))


def check_state(state, where: str) -> None:
    """state.pt's structure (format 2: the loop's fields under "loop"; format 1: at the top level)."""

    fix = "delete it to restart the run from its last good files, or restore the file deepdive wrote"
    check(state, Fields({"format": Check(int, lambda v: v in READABLE_FORMATS,
                                         f"one of {READABLE_FORMATS}")}, frozenset({"format"})), where, fix)
    ema = Fields({"updates": Count, "weights": MapOf(Tensor)}, frozenset({"updates", "weights"}), open=False)
    augment = Fields({"generator": Tensor}, frozenset({"generator"}), open=False)
    top = Fields({"model": MapOf(Tensor), "optimizer": dict, "rng": _RNG, "ema": Opt(ema), "augment": Opt(augment)},
                 frozenset({"model", "optimizer", "rng"}))
    check(state, top, where, fix)
    if state["format"] >= 2:
        check(state, Fields({"loop": dict}, frozenset({"loop"})), where, fix)
    check(state["loop"] if state["format"] >= 2 else state, _LOOP, where, fix, "loop" if state["format"] >= 2 else "")
