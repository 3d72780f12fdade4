"""Model weights as safetensors: plain arrays in, plain arrays out, never pickle.

Weights are held as NumPy arrays (both engines speak NumPy), written
atomically, and validated on load against the model's own parameter names and
shapes so a wrong file is a clear error rather than a crash deep in the model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deepdive.storage.atomic import write_atomic
from deepdive.errors import UserError, first_line


def save_weights(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    from safetensors.numpy import save_file

    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    write_atomic(path, lambda tmp: save_file(clean, tmp, metadata=metadata))


def stored_numbers(path: str | Path) -> int:
    """How many numbers a safetensors file holds, from its header alone (nothing is loaded)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no model weights at {path}: give a run folder whose training finished at least one epoch")
    try:
        with safe_open(str(path), framework="numpy") as f:
            return sum(int(np.prod(f.get_slice(k).get_shape(), dtype=object)) for k in f.keys())
    except (SafetensorError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        detail = first_line(exc, 120)
        raise UserError(f"{path} is not a readable safetensors file ({detail}): retrain or restore the run "
                        "folder") from None


def load_weights(path: str | Path, expected: dict[str, tuple] | None = None) -> dict[str, np.ndarray]:
    """Read a safetensors file; with ``expected`` ({name: shape}) check names and shapes."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no model weights at {path}: give a run folder whose training finished at least one epoch")
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError, KeyError, AttributeError, MemoryError,
            OverflowError) as exc:
        # TypeError, AttributeError: a dtype NumPy lacks (BF16, F8_*); the Rust reader checks declared sizes against the file
        detail = first_line(exc, 120)
        raise UserError(f"{path} is not a readable safetensors file of NumPy dtypes ({detail}): retrain or "
                        "restore the run folder") from None
    odd = sorted(name for name, array in arrays.items() if array.dtype.kind not in "fiub")
    if odd:
        raise UserError(f"{path}: {odd[0]} is of dtype {arrays[odd[0]].dtype}, not a number type: retrain or "
                        "restore the run folder")
    if expected is not None:
        missing = sorted(set(expected) - set(arrays))
        extra = sorted(set(arrays) - set(expected))
        if missing or extra:
            raise UserError(f"{path} does not fit the model (missing {missing[:3]}, unexpected {extra[:3]}): "
                            "the run's config.json and weights disagree; retrain the run")
        for name, shape in expected.items():
            if arrays[name].size == int(np.prod(shape)) and arrays[name].ndim != len(shape):
                arrays[name] = arrays[name].reshape(shape)  # 0-d buffers come back from safetensors as (1,)
            if tuple(arrays[name].shape) != tuple(shape):
                raise UserError(f"{path}: {name} has shape {tuple(arrays[name].shape)}, the model needs "
                                f"{tuple(shape)}: the run's config.json and weights disagree; retrain the run")
    return arrays
