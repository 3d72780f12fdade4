"""Rebuild a saved run's model from its folder (config, model.json, safetensors)."""
from __future__ import annotations

from deepdive.checkpoint import load_weights
from deepdive.engines import make_engine
from deepdive.models import build_model
from deepdive.runs import WEIGHTS


def model_options(cfg) -> dict:
    """Family-specific build options a config carries (fastnet's widths and whitening)."""
    if cfg.model == "fastnet":
        options = {"whiten": cfg.whiten}
        if cfg.widths:
            options["widths"] = tuple(cfg.widths)
        return options
    return {}


def load_run_model(run, cfg, info, device: str, normalizer):
    engine = make_engine(cfg.engine, device, normalizer, channels_last=cfg.model == "fastnet", amp=cfg.amp)
    model = engine.build(build_model(info["model"], engine.nn, engine.F, info["input_shape"],
                                     len(info["classes"]), article_exact=cfg.article_exact, **model_options(cfg)))
    expected = {k: tuple(v.shape) for k, v in engine.weights(model).items()}
    engine.load_weights(model, load_weights(run.file(WEIGHTS), expected))
    return engine, model
