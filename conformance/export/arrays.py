"""The arrays of an export as ``.npy`` files, and the key that recognises a call.

Every array is a plain ``.npy`` file (NumPy format 1.0, C order, never pickled) that readers in C,
C++, Rust, Go and Julia read. ``bfloat16``, which the format has no type code for, is stored as its
16-bit pattern (``<u2``, the upper half of the float32 of the same value) and named ``bfloat16`` in
the manifest; float16, float32 and float64 are ``<f2``, ``<f4``, ``<f8`` and bool masks ``|b1``.

An export stores each distinct array once, named by its content (``arrays/<sha256>.npy``): the
calls of one metamorphic check share most of their inputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..dtypes import name_of, numpy_dtype

FOLDER = "arrays"
HASH_LENGTH = 20  # hex digits of the SHA-256 of an array's file that name it


def stored(array: np.ndarray) -> np.ndarray:
    """``array`` as it is written: bfloat16 as its uint16 bit pattern, anything else as it is."""
    return array.view(np.uint16) if name_of(array.dtype) == "bfloat16" else array


def storage_dtype(dtype: str) -> np.dtype:
    """The dtype of the file of an array of the kqv dtype ``dtype`` (``uint16`` for ``bfloat16``)."""
    return np.dtype(np.uint16) if dtype == "bfloat16" else np.dtype(dtype)


def restored(array: np.ndarray, dtype: str) -> np.ndarray:
    """The array of a file whose manifest names ``dtype``: a uint16 bit pattern back to bfloat16."""
    return array.view(numpy_dtype("bfloat16")) if dtype == "bfloat16" else array


class ArrayStore:
    """The folder of an export's arrays: :meth:`add` writes an array once and gives its path relative to the export."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: set[str] = set()
        self.bytes = 0

    def add(self, array: np.ndarray) -> str:
        data = np.ascontiguousarray(stored(np.asarray(array)))
        digest = hashlib.sha256(f"{data.dtype.str}{data.shape}".encode())
        digest.update(data.tobytes())
        name = f"{FOLDER}/{digest.hexdigest()[:HASH_LENGTH]}.npy"
        if name not in self.written:
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, data, allow_pickle=False)
            self.written.add(name)
            self.bytes += path.stat().st_size
        return name


def plain(value: Any) -> Any:
    """A keyword's value as JSON has it: NumPy scalars as numbers, tuples as lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    return value


def call_key(named: dict[str, Any]) -> str:
    """The SHA-256 of one call, its arguments by name: each array's dtype, shape and bytes, each other value's JSON.

    The judge asks each check for the calls it makes, as ``kqv check`` would, and finds the output of each
    by this key; two calls with the same key are one case.
    """
    digest = hashlib.sha256()
    for name in sorted(named):
        value = named[name]
        digest.update(name.encode() + b"=")
        if isinstance(value, np.ndarray):
            digest.update(f"{name_of(value.dtype)}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        else:
            digest.update(json.dumps(plain(value)).encode())
        digest.update(b";")
    return digest.hexdigest()
