"""``fastnet``: a small, fast CIFAR-style network for time-to-accuracy training.

The ideas (from the fast-training literature, airbench among it), written here:
- a frozen *patch-whitening* first layer: 2x2 convolution filters set to the
  eigenvectors of the training patches' covariance, scaled by 1/sqrt(eigenvalue)
  (and their negatives), so the network starts from decorrelated inputs;
- blocks of conv -> max-pool -> BatchNorm -> GELU (twice per block): pooling
  early keeps the expensive convolutions at low resolution;
- identity-style ("dirac") init of each block's convolutions, so a fresh block
  passes its input through and training starts from a shallow network;
- logits scaled down by a constant, which tempers early overconfidence.

Torch only (BatchNorm, GELU): the recipe that uses it is refused on the scratch engine.
"""
from __future__ import annotations

DEFAULT_WIDTHS = (64, 256, 256)


def build(nn, F, input_shape, num_classes, article_exact=False, widths=DEFAULT_WIDTHS,
          whiten: bool = True, identity_init: bool = True, logit_scale: float = 1 / 9):
    import torch

    channels = int(input_shape[0])
    patch = 2
    whiten_width = 2 * channels * patch * patch

    class ConvBlock(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.pool = nn.MaxPool2d(2)
            self.norm1 = nn.BatchNorm2d(c_out, momentum=0.4)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.norm2 = nn.BatchNorm2d(c_out, momentum=0.4)
            for conv in (self.conv1, self.conv2) if identity_init else ():
                w = conv.weight.data
                k = min(w.shape[0], w.shape[1])
                torch.nn.init.dirac_(w[:k])  # identity on the first channels, default init on the rest

        def forward(self, x):
            x = F.gelu(self.norm1(self.pool(self.conv1(x))))
            return F.gelu(self.norm2(self.conv2(x)))

    class FastNet(nn.Module):
        def __init__(self):
            super().__init__()
            first = whiten_width if whiten else widths[0]
            self.whiten = nn.Conv2d(channels, first, patch, padding=0, bias=True)
            self.whiten_frozen = whiten
            if whiten:
                self.whiten.weight.requires_grad_(False)
            blocks, c_in = [], first
            for w in widths:
                blocks.append(ConvBlock(c_in, w))
                c_in = w
            self.blocks = nn.Sequential(*blocks)
            self.head = nn.Linear(c_in, num_classes, bias=False)
            self.logit_scale = logit_scale

        def forward(self, x):
            x = F.gelu(self.whiten(x))
            x = self.blocks(x)
            x = torch.amax(x, dim=(2, 3))  # global max pool
            return self.head(x) * self.logit_scale

    return FastNet()


def init_whitening(model, images, eps: float = 5e-4, max_patches: int = 200_000) -> None:
    """Set the frozen first layer to whiten 2x2 patches of ``images`` (normalized float, NCHW).

    With Σ = V diag(λ) Vᵀ the patches' covariance, filter i is v_i / sqrt(λ_i + eps):
    its outputs are decorrelated with unit variance; the negated filters follow
    so that GELU keeps both signs of each component.
    """
    import torch

    conv = model.whiten
    c, k = conv.weight.shape[1], conv.weight.shape[2]
    patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
    if patches.shape[0] > max_patches:
        gen = torch.Generator().manual_seed(0)
        patches = patches[torch.randperm(patches.shape[0], generator=gen)[:max_patches]]
    patches = patches.double()
    patches = patches - patches.mean(dim=0, keepdim=True)
    cov = patches.T @ patches / patches.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(-1, c, k, k)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight.dtype))
        conv.bias.zero_()
