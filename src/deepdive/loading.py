"""Rebuild a saved run's model from its folder: model.json alone says how to build it."""
from __future__ import annotations

from deepdive.checkpoint import load_weights, stored_numbers
from deepdive.engines import make_engine
from deepdive.errors import UserError
from deepdive.models import build_model, model_options, spec, state_size
from deepdive.runs import MODEL_INFO, WEIGHTS


def load_run_model(run, cfg, info, device: str, normalizer):
    name = info["model"]
    # runs made before model.json recorded the constructor arguments: take them from the config
    options = info["options"] if "options" in info else model_options(name, cfg.to_dict())
    described = state_size(name, info["input_shape"], len(info["classes"]), **options)
    held = stored_numbers(run.file(WEIGHTS))
    if described != held:  # checked before the model is built: an absurd model.json allocates nothing
        raise UserError(f"{run.file(MODEL_INFO)} describes a model of {described:,} numbers but "
                        f"{run.file(WEIGHTS)} holds {held:,}: the run's model.json and weights disagree; retrain the run")
    channels_last = info.get("channels_last", spec(name).channels_last)
    engine = make_engine(info.get("engine", cfg.engine), device, normalizer, channels_last=channels_last,
                         amp=cfg.amp)
    model = engine.build(build_model(name, engine.nn, engine.F, info["input_shape"], len(info["classes"]),
                                     **options))
    expected = {k: tuple(v.shape) for k, v in engine.weights(model).items()}
    engine.load_weights(model, load_weights(run.file(WEIGHTS), expected))
    return engine, model
