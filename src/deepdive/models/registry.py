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
}
_MODULES = {"perceptron": "perceptron", "simplenet": "mlp", "article-cnn": "article_cnn"}


def build_model(name: str, nn, F, input_shape, num_classes: int, article_exact: bool = False):
    family = importlib.import_module(f"deepdive.models.{_MODULES[name]}")
    return family.build(nn, F, tuple(input_shape), int(num_classes), article_exact=article_exact)
