"""torchvision and timm classifiers as deepdive models: ``--model tv:<name>``, ``--model timm:<name>``.

The article closes by inviting the reader to "exchange our modest neural network for one of the
powerful pretrained models like ResNet or InceptionNet that come with torchvision". This adapter
makes any of torchvision's classification models (and timm's, an optional extra) a deepdive model:

- the classifier head is built for the dataset's classes (``num_classes``);
- ``small_input`` swaps the ImageNet stem for 32x32 images: the first convolution becomes 3x3 with
  stride 1 and an initial max-pool right after it is removed, so a CIFAR image is not shrunk 4x
  before the first block;
- inputs smaller than the architecture accepts (Inception needs 75x75) are resized *inside* the
  model, and with pretrained weights to the size the weights were trained at (their own transforms'
  crop, 224 for ResNet, 299 for Inception) - so the data pipeline, ``predict`` and the exports see the
  run's own images and the model does the rest;
- a single-channel image is repeated to the three channels an ImageNet model expects.

Everything that decides the architecture (``small_input``, ``pretrained``) is a constructor option
recorded in model.json, so a run rebuilds from model.json alone; pretrained *weights* are loaded
once, at the start of training (``load_pretrained``), never when a finished run is rebuilt.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from deepdive.config.specs import split_name
from deepdive.errors import UserError, first_line

log = logging.getLogger("deepdive")

DOWNLOAD_TIMEOUT = 10.0  # seconds a connection may take before an offline machine is told what to do
# Inception and GoogLeNet train auxiliary classifiers whose outputs the loop has no use for.
TV_ARCHITECTURE = {"inception_v3": {"aux_logits": False, "init_weights": False},
                   "googlenet": {"aux_logits": False, "init_weights": False}}
TRANSFORM_INPUT = ("inception_v3", "googlenet")  # their pretrained weights expect torchvision's input transform
TV_FIXED_224 = ("vit_", "maxvit_")  # built (without weights) for 224x224 inputs and no other size


def build(nn, F, input_shape, num_classes, name: str, small_input: bool = False, pretrained: bool = False):
    """The ``name`` architecture for ``input_shape`` images and ``num_classes`` classes, wrapped so that it
    takes the run's own images (see the module docstring)."""
    import torch

    source, arch = split_name(name)
    channels, height, width = (int(v) for v in input_shape)
    net_channels = 3 if source == "tv" or channels == 1 else channels
    if source == "tv":
        net = _torchvision_net(arch, num_classes, pretrained)
        if channels not in (1, 3):
            _replace_first_conv(net, channels, keep_geometry=True)
            net_channels = channels
    else:
        import timm
        net = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=net_channels)
    if small_input:
        _small_stem(net)
    resize_to, why = _input_size(source, arch, (height, width), small_input, pretrained)

    class Classifier(nn.Module):
        """``net`` behind the input adaptations the run needs; ``net`` keeps the library's own layout."""

        def __init__(self):
            super().__init__()
            self.net = net
            self.repeat = channels == 1 and net_channels == 3
            self.resize_to = resize_to
            self.input_note = why  # said once when training starts

        def forward(self, x):
            if self.repeat:
                x = x.expand(-1, 3, -1, -1)
            if self.resize_to is not None:
                x = F.interpolate(x, size=self.resize_to, mode="bilinear", align_corners=False)
            out = self.net(x)
            return out if torch.is_tensor(out) else out[0]  # a namedtuple of (logits, aux ...)

    return Classifier()


def _torchvision_net(arch: str, num_classes: int, pretrained: bool):
    import torchvision.models as tvm

    kwargs = dict(TV_ARCHITECTURE.get(arch, {}))
    if pretrained and arch in TRANSFORM_INPUT:
        kwargs["transform_input"] = True
    return tvm.get_model(arch, weights=None, num_classes=num_classes, **kwargs)


def _modules_in_order(net):
    return [(n, m) for n, m in net.named_modules() if n]


def _set_module(root, dotted: str, module) -> None:
    parent_name, _, leaf = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, module)


def _replace_first_conv(net, in_channels: int | None = None, keep_geometry: bool = False) -> str:
    """Swap the first convolution: for ``in_channels`` other channels, or (``keep_geometry`` False) for a
    3x3, stride-1, padding-1 one. Returns its name."""
    from torch import nn

    name, conv = next((n, m) for n, m in _modules_in_order(net) if isinstance(m, nn.Conv2d))
    kernel, stride, padding = (conv.kernel_size, conv.stride, conv.padding) if keep_geometry else (3, 1, 1)
    _set_module(net, name, nn.Conv2d(in_channels or conv.in_channels, conv.out_channels, kernel, stride=stride,
                                     padding=padding, bias=conv.bias is not None))
    return name


def _small_stem(net) -> None:
    """A 3x3 stride-1 first convolution, and no max-pool between it and the next convolution."""
    from torch import nn

    first = _replace_first_conv(net)
    seen_first = False
    for name, module in _modules_in_order(net):
        if name == first:
            seen_first = True
        elif seen_first and isinstance(module, nn.Conv2d):
            return  # the next convolution came first: there is no initial max-pool
        elif seen_first and isinstance(module, nn.MaxPool2d):
            _set_module(net, name, nn.Identity())
            return


def _input_size(source: str, arch: str, size: tuple[int, int], small_input: bool, pretrained: bool):
    """(resize_to, why) for the images the model is given: None when they are used as they are."""
    name = f"{source}:{arch}"
    meta = preprocessing(name)
    crop, smallest, fixed = meta["crop_size"], meta["min_size"], meta.get("fixed")
    if small_input:
        if size[0] < smallest[0] or size[1] < smallest[1] or (fixed and size != (fixed, fixed)):
            need = f"exactly {fixed}x{fixed}" if fixed else f"at least {smallest[0]}x{smallest[1]}"
            raise UserError(f"{name} needs inputs of {need}, the images are {size[0]}x{size[1]}: drop "
                            "--small-input (the images are then resized inside the model)")
        return None, None
    if fixed and size != (fixed, fixed):
        return (fixed, fixed), (f"{name} takes {fixed}x{fixed} inputs only: the {size[0]}x{size[1]} images are "
                                "resized to that inside the model")
    if pretrained and size != (crop, crop):
        return (crop, crop), (f"{source}:{arch}'s pretrained weights were trained on {crop}x{crop} inputs: the "
                              f"{size[0]}x{size[1]} images are resized to {crop}x{crop} inside the model "
                              "(--small-input keeps them as they are)")
    if size[0] < smallest[0] or size[1] < smallest[1]:
        return tuple(smallest), (f"{source}:{arch} needs inputs of at least {smallest[0]}x{smallest[1]}: the "
                                 f"{size[0]}x{size[1]} images are resized to that inside the model")
    return None, None


def preprocessing(name: str) -> dict:
    """The pretrained weights' own preprocessing - mean, std, crop size, smallest input, the weights' name -
    read from the library's metadata (nothing is downloaded)."""
    source, arch = split_name(name)
    if source == "tv":
        import torchvision.models as tvm
        weights = tvm.get_model_weights(arch).DEFAULT
        transform = weights.transforms()
        crop = transform.crop_size[0] if isinstance(transform.crop_size, (list, tuple)) else transform.crop_size
        return {"mean": list(transform.mean), "std": list(transform.std), "crop_size": int(crop),
                "min_size": list(weights.meta.get("min_size", (1, 1))), "weights": str(weights),
                "url": weights.url, "fixed": 224 if arch.startswith(TV_FIXED_224) else None}
    import timm
    cfg = timm.models.get_pretrained_cfg(arch) if hasattr(timm.models, "get_pretrained_cfg") else None
    cfg = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else (cfg or {})
    size = cfg.get("input_size", (3, 224, 224))
    return {"mean": list(cfg.get("mean", (0.485, 0.456, 0.406))), "std": list(cfg.get("std", (0.229, 0.224, 0.225))),
            "crop_size": int(size[-1]), "min_size": [1, 1], "fixed": int(size[-1]) if cfg.get("fixed_input_size") else None,
            "weights": cfg.get("hf_hub_id") or cfg.get("url") or arch, "url": cfg.get("url")}


def pretrained_cache_file(name: str) -> Path:
    """Where torchvision's weights API keeps ``name``'s pretrained file ($TORCH_HOME/hub/checkpoints/)."""
    import torch.hub
    from urllib.parse import urlparse

    url = preprocessing(name)["url"]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def pretrained_state(name: str, weights_file: str | None, download: bool) -> tuple[dict, str]:
    """(state dict, where it came from) of ``name``'s pretrained weights: ``weights_file`` when given, else
    the library's cache, else a download (unless ``download`` is False). Every file is read weights-only
    (a pickle placed in the cache cannot run code). When none is possible: one line naming the exact file
    to obtain and where to put it, at once when the machine is offline (no download attempt hangs)."""
    if weights_file:
        return read_weights_file(weights_file, "--weights"), str(weights_file)
    source, arch = split_name(name)
    if source == "timm":
        return _timm_pretrained(arch, download)
    meta = preprocessing(name)
    cached = pretrained_cache_file(name)
    offline_fix = (f"download {meta['url']} and put it at {cached}, or give --weights FILE "
                   "(safetensors or a weights-only torch file)")
    if not cached.is_file():
        if not download:
            raise UserError(f"the pretrained weights of {name} ({meta['weights']}) are not in the cache and "
                            f"--no-download was given: {offline_fix}")
        _download(meta["url"], cached, f"the pretrained weights of {name}", offline_fix)
    return read_weights_file(cached, f"the cached weights of {name}"), str(cached)


def _reachable(url: str) -> str | None:
    """None when ``url``'s host accepts a connection within DOWNLOAD_TIMEOUT seconds, else why not."""
    from urllib.parse import urlparse

    parts = urlparse(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 443), timeout=DOWNLOAD_TIMEOUT).close()
        return None
    except OSError as exc:
        return str(exc) or type(exc).__name__


def _download(url: str, target: Path, what: str, fix: str) -> None:
    """``url`` into ``target`` (torch.hub's downloader, checking the hash its name carries), or one line."""
    import re

    import torch.hub

    why = _reachable(url)
    if why is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = re.search(r"-([a-f0-9]+)\.", target.name)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
        try:
            torch.hub.download_url_to_file(url, str(target), digest.group(1) if digest else None, progress=True)
            return
        except Exception as exc:  # noqa: BLE001 - a refused, cut or corrupted download is one line
            why = first_line(exc, 120)
        finally:
            socket.setdefaulttimeout(previous)
    raise UserError(f"cannot download {what} ({why}): {fix}")


def _timm_pretrained(arch: str, download: bool) -> tuple[dict, str]:
    """timm's pretrained weights from the Hugging Face cache, or downloaded into it (safetensors or a
    weights-only torch file, read here: nothing in the cache is unpickled freely)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        raise UserError(f"timm has no pretrained weights on the Hugging Face hub for {arch}: give --weights FILE")
    fix = (f"download the weights of https://huggingface.co/{repo} (model.safetensors) into the Hugging Face "
           "cache ($HF_HOME), or give --weights FILE")
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return read_weights_file(found, f"the cached weights of timm:{arch}"), found
    if not download:
        raise UserError(f"timm's pretrained weights of {arch} are not in the cache and --no-download was given: {fix}")
    why = _reachable("https://huggingface.co/")
    if why is not None:
        raise UserError(f"cannot download timm's pretrained weights of {arch} ({why}): {fix}")
    try:
        path = hf_hub_download(repo, "model.safetensors")
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises its own error types
        detail = first_line(exc, 120)
        raise UserError(f"cannot download timm's pretrained weights of {arch} ({detail}): {fix}") from None
    return read_weights_file(path, f"the weights of timm:{arch}"), path


def read_weights_file(path: str | Path, what: str = "--weights") -> dict:
    """A state dict from a safetensors file or a weights-only torch file (never an arbitrary pickle)."""
    import torch

    path = Path(path)
    if path.is_dir() or (path.exists() and not path.is_file()):
        raise UserError(f"{what} {path} is not a regular file: give a .safetensors or a torch weights file")
    if not path.is_file():
        raise UserError(f"{what} {path}: no such file: give a .safetensors or a torch weights file")
    if (path.parent / "model.json").is_file() and (path.parent / "config.json").is_file():
        raise UserError(f"{what} {path} is a deepdive run's weights: start from that run with --init-from "
                        f"{path.parent} (and the flags it was trained with, e.g. --pretrained)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's
        detail = first_line(exc, 120)
        raise UserError(f"{what} {path} is not a safetensors or weights-only torch file ({detail}): give the "
                        "file torchvision or timm publishes") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # the common {"state_dict": ...} wrapping of training scripts
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"{what} {path} does not hold a state dict of tensors: give a model's weights file")
    return state


def load_pretrained(model, name: str, weights_file: str | None, download: bool) -> str:
    """Load ``name``'s pretrained weights into the wrapped library model (``model.net``): every tensor whose
    name and shape match; the classifier head stays freshly initialised when the classes differ, and so does
    a first convolution that --small-input or the channel count replaced. Returns a one-line account."""
    from deepdive.models.transfer import transfer_weights

    state, origin = pretrained_state(name, weights_file, download)
    prefixed = {f"net.{k}": v for k, v in state.items()}
    if not any(k.startswith("net.") for k in state):
        state = prefixed
    return transfer_weights(model, state, origin)
