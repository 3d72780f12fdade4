"""The training state (``state.pt``): everything needed to continue a run bit for bit.

Only plain types go in - dicts, lists, numbers, strings and torch tensors - so
the file loads with ``torch.load(weights_only=True)``, which refuses any pickle
that names a callable: a crafted ``state.pt`` cannot run code. NumPy arrays
(NumPy's RNG state, the scratch engine's optimizer state) are stored as tensors.
"""
from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np

from deepdive.storage.atomic import write_atomic
from deepdive.errors import UserError, first_line

FORMAT = 2  # 2: the loop's fields under "loop" (TrainState); 1: the same fields at the top level


def capture_rng(data_generator) -> dict:
    """Python, NumPy, torch CPU (and CUDA) generators, and the data-order generator."""
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    rng = {"python": {"version": version, "internal": list(internal), "gauss": gauss},
           "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                     "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
           "torch": torch.get_rng_state(), "data": data_generator.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict, data_generator) -> None:
    import torch

    py = rng["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npy = rng["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(rng["torch"])
    data_generator.set_state(rng["data"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_state(path: str | Path, state: dict) -> None:
    import torch

    write_atomic(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load_state(path: str | Path) -> dict:
    """Load ``state.pt`` safely: ``weights_only=True`` admits tensors and plain containers only."""
    import torch

    path = Path(path)
    check_stored_zip(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = first_line(exc) if str(exc).strip() else "not a plain-data checkpoint"
        raise UserError(f"refused to load {path}: it is not a plain training-state file ({first}); "
                        "delete it to restart the run, or restore the file deepdive wrote") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            MemoryError, OverflowError) as exc:
        raise UserError(f"{path} is truncated or corrupt ({type(exc).__name__}): delete it to restart the run "
                        "from its last good files") from None
    if not isinstance(state, dict) or "format" not in state:
        raise UserError(f"{path} is not a deepdive training state (format {FORMAT}): delete it to restart the run")
    from deepdive.storage.schemas import check_state
    check_state(state, str(path))
    return state


def check_stored_zip(path: Path) -> None:
    """``torch.save`` writes an uncompressed zip; ``torch.load`` would inflate a compressed member of any
    declared size. Refuse members that are compressed or larger than the file itself, before loading."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except Exception:  # noqa: BLE001 - BadZipFile, NotImplementedError (odd versions), OSError, ...
        return  # not a zip zipfile reads (torch's legacy format, or garbage): torch.load's own checks answer
    size = path.stat().st_size
    if any(m.compress_type != zipfile.ZIP_STORED or m.file_size > size for m in members) or \
            sum(m.file_size for m in members) > size:
        raise UserError(f"refused to load {path}: it holds compressed or oversized members that torch.save "
                        "never writes; delete it to restart the run, or restore the file deepdive wrote")


def numpy_tree_to_torch(tree):
    """Convert NumPy arrays inside nested dicts/lists/tuples to tensors (for weights_only files)."""
    import torch

    if isinstance(tree, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(tree))
    if isinstance(tree, np.generic):
        return tree.item()
    if isinstance(tree, dict):
        return {k: numpy_tree_to_torch(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(numpy_tree_to_torch(v) for v in tree)
    return tree


def torch_tree_to_numpy(tree):
    import torch

    if isinstance(tree, torch.Tensor):
        return tree.numpy()
    if isinstance(tree, dict):
        return {k: torch_tree_to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(torch_tree_to_numpy(v) for v in tree)
    return tree
