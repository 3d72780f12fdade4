"""Rebuild a saved run's model from its folder: model.json alone says how to build it.

model.json records the model's constructor arguments (``options``) and how the run evaluates it (``engine``,
``tta``, ``amp``, ``ema``: whether model.safetensors holds the moving average). Runs made before it recorded
one of these take it from their config.json - the only reason anything here reads config.json.
"""
from __future__ import annotations

from deepdive.storage.weights import load_weights, stored_numbers
from deepdive.training.engines import make_engine
import numpy as np

from deepdive.errors import RunFailed, UserError
from deepdive.models.registry import build_model, model_options, state_size
from deepdive.config.specs import spec
from deepdive.storage.runs import MODEL_INFO, WEIGHTS


MODEL_SETTINGS = ("options", "engine", "tta", "amp", "ema")  # what model.json holds beside shapes and classes


def model_settings(run, info: dict, cfg=None) -> dict:
    """``MODEL_SETTINGS`` from model.json; a key an older model.json lacks comes from ``cfg`` (read from the
    run's config.json only then), valued as training used it."""
    missing = [key for key in MODEL_SETTINGS if key not in info]
    if not missing:
        return {key: info[key] for key in MODEL_SETTINGS}
    if cfg is None:
        from deepdive.storage.runs import CONFIG
        if not run.file(CONFIG).is_file():
            raise UserError(f"{run.file(MODEL_INFO)} lacks {', '.join(missing)} (a run made before model.json "
                            f"recorded them) and {run.file(CONFIG)}, which then supplies them, is missing: "
                            "restore config.json or retrain the run")
        cfg = run.config()
    values = cfg.to_dict()
    fallback = {"options": lambda: model_options(info["model"], values), "engine": lambda: values["engine"],
                "tta": lambda: values["tta"], "amp": lambda: bool(values["amp"]),
                "ema": lambda: values["ema"] is not None}
    return {key: info[key] if key in info else fallback[key]() for key in MODEL_SETTINGS}


def load_run_model(run, cfg, info, device: str, normalizer, amp: bool | None = None):
    """(engine, model with the run's weights) as model.json describes them; ``cfg`` (may be None) serves only
    an older model.json that lacks a setting. ``amp`` None: as the run evaluated (model.json's)."""
    name = info["model"]
    from deepdive.config.specs import check_model_name
    check_model_name(name)  # a tv:/timm: architecture this torchvision/timm does not have: one line
    settings = model_settings(run, info, cfg)
    options = settings["options"]
    described = state_size(name, info["input_shape"], len(info["classes"]), **options)
    held = stored_numbers(run.file(WEIGHTS))
    if described != held:  # checked before the model is built: an absurd model.json allocates nothing
        raise UserError(f"{run.file(MODEL_INFO)} describes a model of {described:,} numbers but "
                        f"{run.file(WEIGHTS)} holds {held:,}: the run's model.json and weights disagree; retrain the run")
    channels_last = info.get("channels_last", spec(name).channels_last)
    engine = make_engine(settings["engine"], device, normalizer, channels_last=channels_last,
                         amp=settings["amp"] if amp is None else amp)
    model = engine.build(build_model(name, engine.nn, engine.F, info["input_shape"], len(info["classes"]),
                                     **options))
    expected = {k: tuple(v.shape) for k, v in engine.weights(model).items()}
    arrays = load_weights(run.file(WEIGHTS), expected)
    broken = sorted(k for k, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all())
    if broken:  # nothing computed from them means anything: an accuracy of "10%", a prediction of "nan%"
        raise RunFailed(f"{run.file(WEIGHTS)} holds NaN or infinite weights ({broken[0]}"
                        f"{f' and {len(broken) - 1} more' if len(broken) > 1 else ''}): the run diverged; retrain "
                        "it, e.g. with a lower --lr")
    engine.load_weights(model, arrays)
    return engine, model
