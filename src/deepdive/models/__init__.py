"""Models: the registry and the families it names."""
from deepdive.models.registry import MODELS, build_model

__all__ = ["MODELS", "build_model"]
