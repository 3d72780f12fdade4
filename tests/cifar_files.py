"""Write tiny CIFAR-10 folders in the official format, for the reader's tests."""
import pickle
from pathlib import Path

import numpy as np

TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root: Path, per_batch: int = 20, bytes_keys: bool = True, seed: int = 0) -> Path:
    """root/cifar-10-batches-py/ with 5 train batches and a test batch of ``per_batch`` images each.

    ``bytes_keys`` mimics the official files (written by Python 2: plain str keys that
    read back as latin-1 text); the shared copy uses str keys. Both must load.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    for name in TRAIN + ["test_batch"]:
        batch = {key("batch_label"): key(name), key("labels"): (np.arange(per_batch) % 10).tolist(),
                 key("data"): rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 key("filenames"): [key(f"{i}.png") for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {key("label_names"): [key(c) for c in CLASSES], key("num_cases_per_batch"): per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


class Payload:
    """Unpickling this runs ``os.system``: exactly what a hostile data folder would try."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))
