import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepdive.config.specs import MODELS
from deepdive.models.registry import build_model


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_logits_shape(name, shape):
    model = build_model(name, nn, F, shape, 7)
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, 7)


def test_article_cnn_matches_the_article_layers():
    model = build_model("article-cnn", nn, F, (3, 32, 32), 10)
    convs = [(m.in_channels, m.out_channels, m.kernel_size, m.padding) for m in model.modules()
             if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 64, (3, 3), (0, 0)), (64, 128, (3, 3), (0, 0)),
                     (128, 128, (3, 3), (0, 0)), (128, 64, (3, 3), (0, 0))]
    linears = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears == [(64, 32), (32, 10)]
    dropouts = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.5]
    # the article's parameter count for CIFAR-10
    assert sum(p.numel() for p in model.parameters()) == 1792 + 73856 + 147584 + 73792 + 2080 + 330


def test_article_cnn_follows_input_channels():
    model = build_model("article-cnn", nn, F, (1, 28, 28), 10)
    assert model.conv1.in_channels == 1


def test_simplenet_logit_relu_only_when_article_exact():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 28, 28)
    fixed = build_model("simplenet", nn, F, (1, 28, 28), 10)
    exact = build_model("simplenet", nn, F, (1, 28, 28), 10, article_exact=True)
    exact.load_state_dict(fixed.state_dict())
    assert (fixed(x) < 0).any()
    assert (exact(x) >= 0).all()
    assert torch.equal(exact(x), fixed(x).clamp_min(0))
    sizes = [(m.in_features, m.out_features) for m in fixed.modules() if isinstance(m, nn.Linear)]
    assert sizes == [(784, 128), (128, 64), (64, 10)]


def test_perceptron_is_one_linear_layer():
    model = build_model("perceptron", nn, F, (3, 4, 4), 3)
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == 1 and layers[0].in_features == 48
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(model(x), x.reshape(2, -1) @ layers[0].weight.T + layers[0].bias)
