"""One image file: its header checked, decoded within bounds, converted to RGB (or grey), fitted to a size.

Shared by the in-memory reader (imagefolder.py), the streamed one (streaming.py) and the predictor, so that
a file reads the same way everywhere.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from deepdive.errors import UserError
from deepdive.output import printable

log = logging.getLogger("deepdive")

DEFAULT_MAX_BYTES = 256 << 20  # --max-image-mb's default


class UnreadableImage(Exception):
    pass


MAX_PIXELS = 1 << 25  # 33.5 M pixels (an 8K frame, most photos): one decode stays under ~250 MB


ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
ALPHA_KINDS = frozenset({"RGBA", "grayscale+alpha", "transparent palette"})
_KINDS = {"1": "black-and-white", "L": "grayscale", "LA": "grayscale+alpha", "La": "grayscale+alpha",
          "I": "16-bit grayscale", "F": "floating-point grayscale", "P": "palette", "PA": "transparent palette",
          "RGBA": "RGBA", "RGBa": "RGBA", "RGB": "RGB"}


def load_image(path: Path, size: tuple[int, int], channels: int = 3, max_bytes: int = DEFAULT_MAX_BYTES,
               resize_mode: str = "crop") -> np.ndarray:
    """Open any image PIL reads, convert to RGB (or grey for 1 channel), fit to ``size``: (H, W, C) uint8.

    Training data and ``predict`` both go through here, so a file is seen the same way by both
    (``predict`` passes the ``resize_mode`` the run recorded).
    """
    return read_image(path, size, channels, max_bytes, resize_mode)[0]


def read_image(path: Path, size: tuple[int, int], channels: int = 3, max_bytes: int = DEFAULT_MAX_BYTES,
               resize_mode: str = "crop") -> tuple[np.ndarray, str | None]:
    """``load_image``'s array and what converting the file was (``conversion_kind``), for the one log line."""
    with _opened(path, max_bytes, whole=True) as img:
        kind = conversion_kind(img, channels)
        img = fitted(converted(img, channels), size, resize_mode)
        array = np.asarray(img, dtype=np.uint8)
    return (array[:, :, None] if array.ndim == 2 else array), kind


def conversion_kind(img, channels: int = 3) -> str | None:
    """What converting ``img`` to ``channels`` is, in words (``None``: it has them already)."""
    if img.mode == ("RGB" if channels == 3 else "L"):
        return None
    if img.mode == "P" and "transparency" in img.info:
        return "transparent palette"
    if img.mode.startswith("I;16"):
        return "16-bit grayscale"
    return _KINDS.get(img.mode, img.mode)


def converted(img, channels: int):
    """``img`` in mode RGB (or L). PIL's own conversion would clip 16-bit grey to white, so it is scaled
    here (65535 -> 255); transparent pixels are flattened onto white, as a viewer shows them, rather than
    keeping whatever colour the encoder left under them."""
    from PIL import Image

    target = "RGB" if channels == 3 else "L"
    if img.mode == target:
        return img
    if img.mode == "I" or img.mode.startswith("I;16"):
        grey = np.asarray(img).astype(np.float32) / 257.0
        img = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    elif img.mode in ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert(target)


def fitted(img, size: tuple[int, int], resize_mode: str):
    """``img`` at ``size`` (height, width), bilinear.

    squash: the whole image scaled to the size (its aspect ratio lost). crop: the shorter side scaled to
    the size, then the centre kept - done in one resample of the centre box of the source, which is the
    same arithmetic without the intermediate image (the filter still reads the pixels just outside the box).
    """
    from PIL import Image

    if resize_mode not in ("crop", "squash"):
        raise ValueError(f"unknown resize mode {resize_mode!r}")
    height, width = size
    if img.size == (width, height):
        return img
    box = None
    if resize_mode == "crop":
        scale = max(width / img.width, height / img.height)
        w, h = width / scale, height / scale
        left, top = (img.width - w) / 2, (img.height - h) / 2
        box = (left, top, left + w, top + h)
    return img.resize((width, height), Image.BILINEAR, box=box)


def check_header(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, channels: int = 3) -> str | None:
    """What opening a file costs (its header, not its pixels): raises ``UnreadableImage`` for a file
    PIL does not recognise, one above ``max_bytes``, above ``MAX_PIXELS``, or a decompression bomb.
    Returns what converting it to ``channels`` will be (``conversion_kind``)."""
    with _opened(path, max_bytes) as img:
        return conversion_kind(img, channels)


@contextlib.contextmanager
def _opened(path: Path, max_bytes: int, whole: bool = False):
    """``Image.open`` (which reads the header only) behind the size and pixel ceilings; every way PIL
    fails - on the header here, or on the pixels in the caller's block - becomes ``UnreadableImage``.

    ``whole``: the pixels will be decoded, so the file is read into memory first and PIL reads from
    that. PIL asks its file for a chunk's *declared* length at once (a PNG IDAT claiming 3 GB), and a
    real file object allocates what is asked; an in-memory one returns only what there is.
    """
    from PIL import Image, UnidentifiedImageError

    _bombs_are_errors()
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise UnreadableImage(f"larger than {max_bytes / (1 << 20):g} MB (--max-image-mb)")
        if whole:
            with open(path, "rb") as f:
                source = io.BytesIO(f.read(size + 1))
        else:
            source = path
        with Image.open(source) as img:
            if img.width * img.height > MAX_PIXELS:
                raise UnreadableImage(f"{img.width}x{img.height} pixels, more than {MAX_PIXELS:,}")
            yield img
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(f"{type(exc).__name__}") from None


def _bombs_are_errors() -> None:
    """PIL warns (two lines of Python warning) for images between MAX_IMAGE_PIXELS and twice that:
    make that warning an exception, so such a file is one more unreadable file."""
    import warnings

    from PIL import Image

    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def report_unreadable(bad: list[str], strict: bool, where: str = "") -> None:
    """The one warning (skip) or the one refusal (``strict``) for unreadable files, in memory or streaming."""
    if bad and strict:
        raise UserError(f"cannot read image {bad[0]} ({len(bad)} unreadable file(s) {where or 'in all'}): "
                        "remove or replace them, or drop --strict to skip them")
    if bad:
        shown = printable(", ".join(bad[:3]) + (", ..." if len(bad) > 3 else ""))  # names that are not UTF-8
        log.warning("warning: skipped %d unreadable or non-image file(s)%s: %s", len(bad),
                    f" {where}" if where else "", shown)
