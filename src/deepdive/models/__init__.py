"""Models: the registry and the families it names."""
from deepdive.models.registry import (MODELS, MODELS_SPECS, build_model, init_from_data, model_options, spec,
                                     state_size)

__all__ = ["MODELS", "MODELS_SPECS", "build_model", "init_from_data", "model_options", "spec"]
