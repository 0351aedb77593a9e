"""The contract's ``(..., n, d)`` arrays in the 4-D ``(B, H, n, d)`` layout of libraries that require it."""

from __future__ import annotations

from typing import Any


def as_batch_heads(array: Any) -> Any:
    """``(..., n, d)`` with 0 to 2 leading dims -> ``(B, H, n, d)``: one leading dim is ``H`` with ``B = 1``
    (the head axis of grouped-query attention is -3), none gives ``B = H = 1``. A reshape, so it works on NumPy and
    JAX arrays alike."""
    return array.reshape((1,) * (4 - array.ndim) + array.shape)
