"""The stable softmax of the reference, in float64.

Clause ``softmax.definition``: ``softmax(x)_j = exp(x_j) / sum_k exp(x_k)`` over the
kept entries of a row. Clause ``softmax.stable``: the reference evaluates it as
``exp(x_j - m) / sum_k exp(x_k - m)`` with ``m`` the row max over kept entries, which
is the same number (the factor ``exp(-m)`` cancels) but never overflows: every
exponent is ``<= 0`` and the largest term is exactly 1, so the sum lies in
``[1, n]`` and a row that keeps an entry never divides 0 by 0. Clause
``softmax.rows-sum-to-one``: the kept weights of a row sum to 1 (up to rounding).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .stages import drop_keys, softmax as stage_softmax
from .validation import as_float64


def softmax(x: Any, axis: int = -1, where: Any = None) -> np.ndarray:
    """Float64 softmax ``exp(x_j - m) / sum_k exp(x_k - m)`` along ``axis`` (clauses ``softmax.definition``, ``softmax.stable``).

    ``where`` (bool, broadcastable to ``x``) selects the entries that take part;
    the others, and entries equal to ``-inf``, get weight exactly 0. A row with no
    entry taking part returns zeros (never NaN). Kept entries must be finite or
    ``-inf``; a NaN or ``+inf`` among them makes the row NaN.
    """
    x = as_float64("x", x)
    keep = None
    if where is not None:
        keep = np.asarray(where)
        if keep.dtype != np.bool_:
            raise TypeError(f"where: expected a bool array, got dtype {keep.dtype}")
        try:
            fits = np.broadcast_shapes(keep.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"where: shape {keep.shape} does not broadcast to x's shape {x.shape}")
    if x.ndim == 0:
        raise ValueError("x: expected an array with at least 1 dim, got a scalar")
    x = np.array(x, copy=True)
    if keep is not None:
        drop_keys(x, np.broadcast_to(keep, x.shape))
    p, _ = stage_softmax(x, axis=axis)  # the softmax stage of the attention pipeline
    return p
