"""A restricted unpickler for CIFAR-10's python batches.

CIFAR-10 ships as pickles, and unpickling runs whatever callable the file names.
This reader admits only what the format needs: numpy's array-rebuild function
(``numpy.core.multiarray._reconstruct`` in files written by numpy 1,
``numpy._core.multiarray._reconstruct`` by numpy 2), ``numpy.ndarray``,
``numpy.dtype`` and ``_codecs.encode`` (how protocol 2 stores bytes). Anything
else - ``os.system``, ``builtins.eval``, ... - is refused before it can run.
"""
from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

try:  # numpy 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class RefusedPickle(Exception):
    """The pickle names something outside the CIFAR-10 format."""


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedPickle(f"it refers to {module}.{name}, which the CIFAR-10 format never uses") from None


def load_cifar_pickle(data: bytes):
    """Unpickle CIFAR batch bytes, admitting only the format's own types."""
    return _CifarUnpickler(io.BytesIO(data), encoding="latin1").load()
