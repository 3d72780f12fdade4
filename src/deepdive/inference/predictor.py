"""``deepdive.load(run)`` -> a ``Predictor``: the one inference path.

    import deepdive
    predictor = deepdive.load("runs/mine")          # model.json alone rebuilds it
    probs = predictor(["cat.jpg", "dog.png"])       # float64 (N, classes), rows sum to 1
    predictor.classes[int(probs[0].argmax())]

The predictor is what ``deepdive predict``, ``deepdive evaluate`` and ``deepdive export`` are built on:
the same files read the same way, the same normalization, the same test-time views, the same batches,
so the three give the same numbers bit for bit. Importing ``deepdive`` imports none of this (nor torch);
``deepdive.load`` imports it on first use.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deepdive.errors import UserError, first_line

ACCEPTED = ("uint8 images: a torch tensor (N, C, H, W) or (C, H, W) (channels first); a NumPy array (N, H, W, C), "
            "(H, W, C), (H, W) or (N, H, W) grey (channels last); a PIL image; a file path; or a list of these")
LAYOUTS = ("torch tensors are channels-first, (N, C, H, W) or (C, H, W); NumPy arrays are channels-last, "
           "(N, H, W, C) or (H, W, C); C is 1 (grey), 3 (RGB) or 4 (RGBA)")
LAYOUT_FIX = {"torch": "a channels-last tensor: .permute(0, 3, 1, 2) for a batch, .permute(2, 0, 1) for one image",
              "numpy": "a channels-first array: .transpose(0, 2, 3, 1) for a batch, .transpose(1, 2, 0) for one image"}


def load(run: str | os.PathLike, device: str = "auto", amp: bool | None = None) -> "Predictor":
    """The run folder ``run`` as a ready ``Predictor``: its model with the weights of model.safetensors (the
    moving average when the run used --ema), its preprocessing, classes and test-time augmentation.

    Everything comes from RUN/model.json and RUN/model.safetensors; config.json is read only for a run made
    before model.json recorded its evaluation settings. ``device``: auto (CUDA when there is one), cpu,
    cuda or cuda:N (a scratch-engine run computes on the CPU). ``amp`` None: bf16 autocast exactly when the
    run evaluated with it (False: float32 always). Bad input raises ``UserError`` naming the fix.
    """
    from deepdive.data.pipeline import Normalizer
    from deepdive.inference.model_loading import load_run_model, model_settings

    device = _device(device)
    if amp is not None and not isinstance(amp, bool):
        raise UserError(f"amp {amp!r} is invalid: give None (as the run evaluated), True (bf16) or False (float32)")
    folder = open_run_folder(run)
    info = folder.model_info()
    settings = model_settings(folder, info)
    normalizer = Normalizer(info["mean"], info["std"], info["input_shape"][0])
    engine, net = load_run_model(folder, None, info, device, normalizer, amp=amp)
    net.eval()
    return Predictor(folder.path, info, settings, engine, net)


def _device(device) -> str:
    """auto, cpu, cuda or cuda:N (N a GPU this machine has), or one ``UserError`` naming them."""
    fix = "give auto, cpu, cuda or cuda:N"
    device = str(device) if type(device).__name__ == "device" else device  # a torch.device
    if not isinstance(device, str):
        raise UserError(f"device {device!r} is invalid: {fix}")
    if device in ("auto", "cpu", "cuda"):
        return device
    index = device[len("cuda:"):] if device.startswith("cuda:") else ""
    if not (index.isascii() and index.isdigit()):
        raise UserError(f"device {device!r} is unknown: {fix}")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(index) >= count:
        raise UserError(f"device {device} is not here ({count} CUDA GPU{'' if count == 1 else 's'} found): "
                        f"{'give cuda:0..cuda:' + str(count - 1) + ', ' if count else ''}or use cpu or auto")
    return device


def open_run_folder(run):
    """The run folder, checked as far as loading needs it: model.json and the weights (not config.json)."""
    from deepdive.storage.runs import MODEL_INFO, WEIGHTS, RunDir

    if isinstance(run, bytes):
        run = os.fsdecode(run)
    if not isinstance(run, (str, os.PathLike)) or not os.fspath(run):
        raise UserError(f"run {run!r} is invalid: give the path of a run folder made by `deepdive train` "
                        "(a str or os.PathLike)")
    path = Path(run)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a run folder: give a folder made by `deepdive train`")
    if not path.is_dir():
        raise UserError(f"run folder {path} does not exist: give a folder made by `deepdive train`")
    if not (path / MODEL_INFO).is_file():
        raise UserError(f"{path} is not a run folder (no {MODEL_INFO}): give a folder made by `deepdive train`")
    if not (path / WEIGHTS).is_file():
        raise UserError(f"{path} has no {WEIGHTS} yet: give a run folder whose training finished at least one "
                        "epoch")
    return RunDir(path)


class Predictor:
    """A run's model, ready to classify images.

    ``predictor(images)`` -> class probabilities: a float64 ``torch.Tensor`` (N, len(classes)) on the CPU,
    softmax of the logits (averaged over the run's test-time views). ``images`` are uint8 pixels: a torch
    tensor (N, C, H, W) or (C, H, W) (channels first, as torch computes); a NumPy array (N, H, W, C),
    (H, W, C) or (H, W) (greyscale) (channels last, as PIL and image libraries give them); a PIL image; a
    file path (read as training reads image files: ``data.imagefolder.load_image``); or a list of these,
    one image each. A 3-D NumPy array whose last dimension is not a channel count (1, 3 or 4) is a batch
    of grey images (N, H, W) - but only where no other reading is possible: with N of 3 or 4 it could as
    well be one channels-first image (C, H, W), and it is refused, naming both fixes (one grey image,
    N = 1, reads the same either way and is accepted). An image of another size or channel count is converted and fitted to
    ``input_shape`` exactly as an image file would be (RGB or grey, the run's resize mode, bilinear).

    Attributes: ``model`` (a plain ``torch.nn.Module`` in eval mode taking *normalized* float NCHW
    batches - ``preprocess`` makes them; no test-time views), ``classes``, ``input_shape`` (C, H, W),
    ``mean`` and ``std`` (per channel, of pixels scaled to [0, 1]), ``tta`` (none | flip | flip-shift),
    ``resize_mode``, ``engine`` and ``net`` (the engine the run trained with and its model: for a run of
    ``--engine scratch`` the predictor computes with the NumPy engine, as evaluate always has, and
    ``model`` is the same architecture rebuilt on torch with the same weights).
    """

    def __init__(self, path: Path, info: dict, settings: dict, engine, net):
        self.path = Path(path)
        self.info = info
        self.classes: list[str] = list(info["classes"])
        self.input_shape: tuple[int, int, int] = tuple(int(v) for v in info["input_shape"])  # type: ignore
        from deepdive.data.pipeline import per_channel
        self.mean, self.std = per_channel(info["mean"], info["std"], self.input_shape[0])
        self.settings = settings  # model_loading.MODEL_SETTINGS: options, engine, tta, amp, ema
        self.tta: str = settings["tta"]
        self.amp: bool = bool(engine.amp)
        self.ema: bool = settings["ema"]
        self.resize_mode: str = info.get("resize_mode", "squash")  # runs before --resize-mode squashed
        self.engine, self.net = engine, net
        self.batch_size: int = engine.eval_batch_size  # evaluate's batches: the same images, the same numbers
        self._torch_model = engine.torch_module(net)  # None for a scratch-engine run: rebuilt on first use

    def __repr__(self) -> str:
        return (f"Predictor({str(self.path)!r}: {self.info['model']} on {'x'.join(map(str, self.input_shape))} "
                f"images, {len(self.classes)} classes, tta {self.tta}, engine {self.engine.name})")

    @property
    def device(self):
        return getattr(self.engine, "device", "cpu")

    @property
    def model(self):
        """The model as a plain ``torch.nn.Module`` in eval mode (rebuilt on torch for a scratch-engine run)."""
        if self._torch_model is None:
            self._torch_model = self._rebuild_on_torch()
        return self._torch_model

    def __call__(self, images) -> "torch.Tensor":  # noqa: F821
        import torch

        return torch.softmax(self.logits(images).to(torch.float64), dim=1)

    def logits(self, images) -> "torch.Tensor":  # noqa: F821
        """float32 logits (N, classes) on the CPU, averaged over the test-time views (before softmax)."""
        import torch

        batch = self.to_batch(images)
        parts = [self._logits(batch[i:i + self.batch_size]) for i in range(0, len(batch), self.batch_size)]
        return torch.cat(parts) if parts else torch.zeros((0, len(self.classes)), dtype=torch.float32)

    def preprocess(self, images) -> "torch.Tensor":  # noqa: F821
        """The normalized float32 NCHW batch ``model`` takes, on its device: (x / 255 - mean) / std."""
        from deepdive.data.pipeline import Normalizer

        batch = self.to_batch(images)
        return Normalizer(self.mean, self.std, self.input_shape[0])(batch.to(next(self.model.parameters()).device))

    def _logits(self, batch):
        """One batch through the engine, exactly as ``training.evaluation`` computes it."""
        from deepdive.training.engines import evaluation
        from deepdive.training.evaluation import tta_logits

        engine = self.engine
        with evaluation(self.net), engine.no_grad(), engine.autocast():
            logits = tta_logits(self.net, engine.inputs(batch), self.tta)
        return engine.cpu_logits(logits)

    # -- images in -----------------------------------------------------------------------------------------
    def to_batch(self, images) -> "torch.Tensor":  # noqa: F821
        """``images`` as one uint8 (N, C, H, W) tensor of the model's input shape (see the class docstring)."""
        import torch

        c, h, w = self.input_shape
        if isinstance(images, torch.Tensor):
            if images.dtype != torch.uint8:
                raise UserError(f"images are a {images.dtype} tensor: give uint8 pixels ({ACCEPTED})")
            if images.dim() == 3:
                images = images[None]
            if images.dim() != 4:
                raise UserError(f"an image tensor of shape {tuple(images.shape)}: give (N, C, H, W) or (C, H, W) "
                                "(torch tensors are channels-first)")
            if tuple(images.shape[1:]) == self.input_shape:
                return images.cpu()
            return self._stack([self._fit_array(img.permute(1, 2, 0).cpu().numpy(), "torch") for img in images])
        if isinstance(images, np.ndarray):
            if images.dtype != np.uint8:
                raise UserError(f"images are a {images.dtype} array: give uint8 pixels ({ACCEPTED})")
            if images.ndim == 2:
                images = images[:, :, None]
            if images.ndim == 3:
                images = _batch_of_3d(images)
            if images.ndim != 4:
                raise UserError(f"an image array of shape {images.shape}: give (N, H, W, C), (H, W, C), (H, W) or "
                                "(N, H, W) (NumPy arrays are channels-last)")
            if images.shape[1:] == (h, w, c):
                return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
            return self._stack([self._fit_array(img, "numpy") for img in images])
        if isinstance(images, (str, os.PathLike)) or _is_pil(images):
            images = [images]
        if isinstance(images, (list, tuple)):
            return self._stack([self._one(item) for item in images])
        raise UserError(f"cannot read images from a {type(images).__name__}: give {ACCEPTED}")

    def _stack(self, arrays: list[np.ndarray]):
        import torch

        if not arrays:
            return torch.zeros((0, *self.input_shape), dtype=torch.uint8)
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def _one(self, item) -> np.ndarray:
        """One image of a list, as an (H, W, C) uint8 array of the input shape."""
        import torch

        if isinstance(item, (str, os.PathLike)):
            return self.read_file(Path(item))
        if _is_pil(item):
            return self._fit_pil(item)
        if isinstance(item, torch.Tensor) and item.dtype == torch.uint8 and item.dim() == 3:
            return self._fit_array(item.permute(1, 2, 0).cpu().numpy(), "torch")
        if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim in (2, 3):
            return self._fit_array(item if item.ndim == 3 else item[:, :, None], "numpy")
        raise UserError(f"a list item of type {type(item).__name__}: each item is one image ({ACCEPTED})")

    def read_file(self, path: str | os.PathLike) -> np.ndarray:
        """An image file as training reads one (RGB or grey, fitted by the run's resize mode): (H, W, C) uint8."""
        array, reason = self._read(Path(path))
        if reason is not None:
            raise UserError(f"{_shown(Path(path))}: {reason}: give image files PIL can open")
        return array

    def _read(self, path: Path) -> tuple[np.ndarray | None, str | None]:
        """(the image, None) or (None, why it could not be read)."""
        from deepdive.data.images import UnreadableImage, load_image

        try:
            if not path.is_file():
                raise UnreadableImage("a folder, not an image file (give the files in it)" if path.is_dir() else
                                      "no such file" if not path.exists() else "not a regular file")
            return load_image(path, self.input_shape[1:], self.input_shape[0], resize_mode=self.resize_mode), None
        except UnreadableImage as exc:
            return None, f"not a readable image ({exc})"
        except OSError as exc:
            return None, f"cannot read ({exc.strerror or exc})"

    def _fit_array(self, array: np.ndarray, kind: str) -> np.ndarray:
        """One (H, W, C) image (``kind``: "torch" or "numpy", what it came as, for the message) fitted."""
        c, h, w = self.input_shape
        if array.shape == (h, w, c):
            return np.ascontiguousarray(array)
        if array.shape[2] not in (1, 3, 4):
            raise UserError(f"an image with {array.shape[2]} channels (a {kind} image of shape "
                            f"{_as_given(array, kind)}): {LAYOUTS}; {LAYOUT_FIX[kind]}")
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise UserError(f"an image of {array.shape[0]}x{array.shape[1]} pixels has nothing to classify: give "
                            "images at least 1x1")
        from PIL import Image

        return self._fit_pil(Image.fromarray(np.ascontiguousarray(array[:, :, 0] if array.shape[2] == 1 else array)))

    def _fit_pil(self, img) -> np.ndarray:
        """A PIL image converted and fitted as ``load_image`` does an opened file (the same two steps)."""
        from deepdive.data.images import converted as _converted, fitted as _fitted

        c = self.input_shape[0]
        if img.width == 0 or img.height == 0:
            raise UserError(f"an image of {img.height}x{img.width} pixels has nothing to classify: give images at "
                            "least 1x1")
        array = np.asarray(_fitted(_converted(img, c), self.input_shape[1:], self.resize_mode), dtype=np.uint8)
        return array[:, :, None] if array.ndim == 2 else array

    # -- files in, top-k out (deepdive predict) -------------------------------------------------------------
    def predict(self, files, top_k: int = 5) -> list[dict]:
        """{"file", "predictions": [{"class", "probability"}, ...]} (top ``top_k``, most likely first) for
        each file, or {"file", "error"} for one that is not a readable image; the rest go on. ``files``: a list
        (any iterable) of paths, or one path (a str or os.PathLike) - a single string is one file, not its
        characters."""
        if isinstance(files, (str, bytes, os.PathLike)):
            files = [files]
        if top_k <= 0:
            raise UserError(f"--top-k {top_k} is invalid: give a positive integer")
        k = min(top_k, len(self.classes))
        results: list[dict] = []
        pending: list[tuple[int, np.ndarray]] = []

        def flush() -> None:
            if not pending:
                return
            top = self([a for _, a in pending]).topk(k, dim=1)
            for (slot, _), values, indices in zip(pending, top.values, top.indices):
                results[slot]["predictions"] = [{"class": self.classes[i], "probability": float(p)}
                                                for p, i in zip(values.tolist(), indices.tolist())]
            pending.clear()

        for path in (Path(os.fsdecode(f) if isinstance(f, bytes) else f) for f in files):
            results.append({"file": _shown(path)})
            array, reason = self._read(path)
            if reason is None:
                pending.append((len(results) - 1, array))
            else:
                results[-1]["error"] = reason
            if len(pending) >= self.batch_size:
                flush()
        flush()
        return results

    # -- torch rebuild of a scratch-engine run ----------------------------------------------------------------
    def _rebuild_on_torch(self):
        """The same architecture built on torch.nn (the families are written once for both engines) with the
        scratch model's weights; refused in one line where the names or shapes do not carry over."""
        import torch

        from deepdive.models.registry import build_model

        name = self.info["model"]
        model = build_model(name, torch.nn, torch.nn.functional, self.input_shape, len(self.classes),
                            **self.settings["options"])
        weights = self.engine.weights(self.net)
        try:
            model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in weights.items()})
        except (RuntimeError, KeyError) as exc:
            detail = first_line(exc, 160)
            raise UserError(f"the {name} model of this scratch-engine run cannot be rebuilt on torch ({detail}): "
                            "use `deepdive.load(run).predict` or the scratch engine") from None
        return model.eval()


def _batch_of_3d(images: np.ndarray) -> np.ndarray:
    """A 3-D uint8 array as a batch (N, H, W, C): one (H, W, C) image when its last dimension is a channel
    count, else N grey images (N, H, W) - unless N is 3 or 4, which reads as well as one channels-first
    (C, H, W) image: refused then, naming both fixes (see ``Predictor``'s docstring)."""
    first, last = images.shape[0], images.shape[2]
    if last in (1, 3, 4):
        return images[None]
    if first in (3, 4):
        raise UserError(f"an image array of shape {images.shape} is ambiguous: NumPy images are channels-last "
                        f"(H, W, C) with C 1, 3 or 4; for one channels-first image give array.transpose(1, 2, 0), "
                        f"for {first} grey images give array[..., None] (N, H, W, 1)")
    return images[:, :, :, None]


def _as_given(array: np.ndarray, kind: str) -> tuple:
    """The shape of an (H, W, C) image as the caller laid it out: (C, H, W) for a torch tensor."""
    return tuple(array.shape[i] for i in ((2, 0, 1) if kind == "torch" else (0, 1, 2)))


def _is_pil(obj) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)


def _shown(path: Path) -> str:
    """A file name as text, even when it is not UTF-8 (its bytes as \\xNN)."""
    return os.fsdecode(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

