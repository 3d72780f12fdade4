"""The model registry: name -> family module with ``build(nn, F, input_shape, num_classes, article_exact)``.

Families receive the ``nn`` and ``F`` namespaces, so one definition serves
both engines (``torch.nn`` now, ``deepdive.scratch.nn`` too).
"""
from __future__ import annotations

import importlib

MODELS = {
    "perceptron": "the article's perceptron f(x, w) = w^T x: one linear layer (a linear classifier)",
    "simplenet": "the article's MLP SimpleNet: flatten -> 128 -> 64 -> classes, ReLU",
    "article-cnn": "the article's CNN Net: 4 convs 3x3 (64,128,128,64), global avg pool, 64->32->classes, dropout 0.5",
    "fastnet": "fast CNN: frozen patch-whitening, conv-pool-BN-GELU blocks (--widths), dirac init (torch only)",
}
TORCH_ONLY = {"fastnet"}
MIN_SIZE = {"article-cnn": 9, "fastnet": 9}  # article-cnn: four unpadded 3x3 convs; fastnet: 2x2 + three pools
_MODULES = {"perceptron": "perceptron", "simplenet": "mlp", "article-cnn": "article_cnn", "fastnet": "fastnet"}


def build_model(name: str, nn, F, input_shape, num_classes: int, article_exact: bool = False, **options):
    """Build model ``name`` for inputs of ``input_shape`` (C, H, W) and ``num_classes`` outputs."""
    need = MIN_SIZE.get(name, 1)
    if min(input_shape[1:]) < need:
        from deepdive.errors import UserError
        raise UserError(f"{name} needs images of at least {need}x{need} pixels, the data has "
                        f"{input_shape[1]}x{input_shape[2]}: use larger images (e.g. --image-size) or another model")
    family = importlib.import_module(f"deepdive.models.{_MODULES[name]}")
    return family.build(nn, F, tuple(input_shape), int(num_classes), article_exact=article_exact, **options)
