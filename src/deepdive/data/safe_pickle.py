"""A restricted, bounded unpickler for CIFAR-10's python batches.

CIFAR-10 ships as pickles, and unpickling runs whatever callable the file names
and allocates whatever the file declares. This reader stops both:

* **Code.** Only what the format needs is admitted: numpy's array-rebuild
  function (``numpy.core.multiarray._reconstruct`` in files written by numpy 1,
  ``numpy._core.multiarray._reconstruct`` by numpy 2), ``numpy.ndarray``,
  ``numpy.dtype`` and ``_codecs.encode`` (how protocol 2 stores bytes), each
  through a wrapper that accepts only the arguments those files use. Anything
  else - ``os.system``, ``builtins.eval``, ... - is refused before it can run.
* **Memory.** Before unpickling, the whole opcode stream is walked once
  (``pickletools.genops``): every declared length must fit in the bytes that
  remain, and the number of opcodes is capped, so no object count or
  ``BINBYTES`` length can exceed what the file holds. Arrays may only be
  plain numbers (no object dtype, no structured or oversized dtypes), and an
  array's declared shape must equal the bytes it carries: the largest array a
  file can make is as large as the file.

The pure-Python unpickler reads every length-prefixed argument from the
in-memory file, so a declared length never turns into an allocation.
"""
from __future__ import annotations

import codecs
import io
import pickle
import pickletools

import numpy as np

try:  # numpy 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

MAX_OPCODES = 200_000  # a CIFAR batch has ~40,000 (10,000 labels, 10,000 file names); the meta file a few dozen
PLAIN_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8", "b1"}


class RefusedPickle(Exception):
    """The pickle names something outside the CIFAR-10 format, or declares more than it holds."""


class MalformedPickle(ValueError):
    """The bytes are not a complete pickle (truncated, corrupt)."""


def _dtype(code, align=False, copy=False):
    text = code.decode("latin1") if isinstance(code, bytes) else code
    if not isinstance(text, str) or text.lstrip("<>|=") not in PLAIN_DTYPES:
        raise RefusedPickle(f"it declares an array of dtype {str(code)[:20]!r}; CIFAR-10 holds plain numbers only")
    return np.dtype(text)


def _rebuild(cls, shape, code):
    """numpy pickles every array as ``_reconstruct(ndarray, (0,), b'b')`` and sets its data with BUILD."""
    if cls is not np.ndarray or shape != (0,) or code not in (b"b", "b"):
        raise RefusedPickle("it rebuilds an array in a way numpy's own pickles never do")
    return _reconstruct(np.ndarray, (0,), b"b")


def _encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding != "latin1":
        raise RefusedPickle("it encodes text in a way CIFAR-10's pickles never do")
    return codecs.encode(text, "latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _rebuild,
    ("numpy._core.multiarray", "_reconstruct"): _rebuild,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}  # and ("_codecs", "encode"), bound to each unpickler's byte budget (_CifarUnpickler.encode)


def _check_array_state(state) -> None:
    """ndarray.__setstate__((version, shape, dtype, fortran, data)): the data must be exactly the shape's bytes."""
    if not (isinstance(state, tuple) and len(state) == 5):
        raise RefusedPickle("it sets an array's contents in an unknown way")
    _, shape, dtype, _, data = state
    if not (isinstance(shape, tuple) and len(shape) <= 4
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise RefusedPickle(f"it declares an array of shape {str(shape)[:40]}")
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.str.lstrip("<>|=") not in PLAIN_DTYPES:
        raise RefusedPickle("it declares an array that is not of plain numbers")
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if not isinstance(data, (bytes, str)) or len(data) != needed:
        raise RefusedPickle(f"an array of shape {shape} needs {needed} bytes but the file gives "
                            f"{len(data) if isinstance(data, (bytes, str)) else 'none'}")


def _check_dtype_state(state) -> None:
    """dtype.__setstate__: only the byte-order tuple plain dtypes carry (no fields, sub-arrays or sizes)."""
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[2:5] == (None, None, None)
            and state[5] == -1):
        raise RefusedPickle("it declares a structured or resized dtype; CIFAR-10 holds plain numbers only")


class _CifarUnpickler(pickle._Unpickler):  # the pure-Python one: it reads arguments, never preallocates them
    """Bytes made by ``_codecs.encode`` and copied into arrays are counted against ``budget`` (twice the
    file's size): one memoized string encoded or built into an array again and again cannot multiply."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, budget: int, **kwargs):
        super().__init__(file, **kwargs)
        self.budget = budget

    def spend(self, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise RefusedPickle("it builds more data than it holds (one string reused over and over)")

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return self.encode
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedPickle(f"it refers to {module}.{name}, which the CIFAR-10 format never uses") from None

    def encode(self, text, encoding="utf-8"):
        if isinstance(text, str):
            self.spend(len(text))
        return _encode(text, encoding)

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            _check_array_state(state)
            self.spend(len(state[4]))
        elif isinstance(inst, np.dtype):
            _check_dtype_state(state)
        else:
            raise RefusedPickle(f"it sets the state of a {type(inst).__name__}, which CIFAR-10 never does")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build


def check_opcodes(data: bytes) -> None:
    """Walk the opcode stream without building anything: lengths must fit the file, opcodes are capped."""
    count = 0
    try:
        for count, _ in enumerate(pickletools.genops(io.BytesIO(data)), 1):
            if count > MAX_OPCODES:
                raise RefusedPickle(f"it holds more than {MAX_OPCODES} pickle operations; a CIFAR-10 batch "
                                    "holds about 40,000")
    except RefusedPickle:
        raise
    except Exception as exc:  # genops: a declared length beyond the end, an unknown opcode, a bad argument
        raise MalformedPickle(str(exc)[:100]) from None
    if count == 0:
        raise MalformedPickle("empty")


def load_cifar_pickle(data: bytes):
    """Unpickle CIFAR batch bytes, admitting only the format's own types and sizes."""
    check_opcodes(data)
    return _CifarUnpickler(io.BytesIO(data), budget=2 * len(data), encoding="latin1").load()
