"""The two arithmetics the stages of the reference compute in: float64 NumPy and mpmath.

Each stage of :mod:`kqv.reference.stages` takes one of them, so the float64 reference and the
mpmath oracle run the same stages on the same index rules; only the numbers differ.

- ``FLOAT64`` (:class:`Float64`): NumPy float64 arrays; BLAS matrix products, NumPy's ``exp`` and sums.
- ``MULTIPRECISION`` (:class:`Multiprecision`): NumPy object arrays of :class:`mpmath.mpf`, at the working precision
  that :func:`mpmath.workdps` sets around the call; every dot product and sum is one correctly
  rounded :func:`mpmath.fdot` or :func:`mpmath.fsum`.
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np


class Float64:
    """NumPy float64."""

    name = "float64"
    neg_inf = -np.inf
    nan = np.nan

    @staticmethod
    def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a @ b

    @staticmethod
    def exp(x: np.ndarray) -> np.ndarray:
        return np.exp(x)

    @staticmethod
    def tanh(x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    @staticmethod
    def log(x: np.ndarray) -> np.ndarray:
        """The natural log; ``log 0 = -inf`` without a warning."""
        with np.errstate(divide="ignore"):
            return np.log(x)

    @staticmethod
    def sum(x: np.ndarray, axis: int) -> np.ndarray:
        """The sums along ``axis``, which is kept with length 1."""
        return np.sum(x, axis=axis, keepdims=True)

    @staticmethod
    def number(value: Any) -> float:
        return float(value)


_exp = np.frompyfunc(mpmath.exp, 1, 1)
_tanh = np.frompyfunc(mpmath.tanh, 1, 1)
_log = np.frompyfunc(mpmath.log, 1, 1)


class Multiprecision:
    """Object arrays of mpmath numbers at the current ``mpmath.mp.dps``."""

    name = "mpmath"
    neg_inf = mpmath.ninf
    nan = mpmath.nan

    @staticmethod
    def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a @ b`` on object arrays ``(..., n, k) @ (..., k, m)``, each element one :func:`mpmath.fdot`."""
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = np.broadcast_to(a, batch + a.shape[-2:])  # (..., n, k)
        b = np.broadcast_to(b, batch + b.shape[-2:])  # (..., k, m)
        out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=object)
        for index in np.ndindex(out.shape):
            *entry, row, column = index
            out[index] = mpmath.fdot(a[(*entry, row)], b[(*entry, slice(None), column)])
        return out

    @staticmethod
    def exp(x: np.ndarray) -> np.ndarray:
        return np.asarray(_exp(x), dtype=object)

    @staticmethod
    def tanh(x: np.ndarray) -> np.ndarray:
        return np.asarray(_tanh(x), dtype=object)

    @staticmethod
    def log(x: np.ndarray) -> np.ndarray:
        """The natural log; ``log 0 = -inf``."""
        return np.asarray(_log(x), dtype=object)

    @staticmethod
    def sum(x: np.ndarray, axis: int) -> np.ndarray:
        """The :func:`mpmath.fsum` along ``axis``, which is kept with length 1."""
        moved = np.moveaxis(x, axis, -1)  # (..., n)
        out = np.empty(moved.shape[:-1] + (1,), dtype=object)
        for index in np.ndindex(moved.shape[:-1]):
            out[index + (0,)] = mpmath.fsum(moved[index])
        return np.moveaxis(out, -1, axis)

    @staticmethod
    def number(value: Any) -> Any:
        return mpmath.mpf(value)


FLOAT64 = Float64()
MULTIPRECISION = Multiprecision()


def to_mpf(array: np.ndarray) -> np.ndarray:
    """A float64 (or bool-free numeric) array as an object array of mpf, exactly."""
    out = np.empty(np.shape(array), dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = mpmath.mpf(float(array[index]))
    return out
