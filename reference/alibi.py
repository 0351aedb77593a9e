"""The slopes of ALiBi (clause ``alibi.slopes``): what the paper gives ``num_heads`` heads.

:func:`alibi_slopes` returns them as float64 ``(num_heads,)``, ready for the keyword ``alibi_slopes``
of :func:`kqv.reference.scaled_dot_product_attention`; the bias they make is the stage
:func:`kqv.reference.stages.add_alibi`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .validation import check_count


def _power_of_two_slopes(num_heads: int) -> np.ndarray:
    """``2^(-8 (h + 1) / num_heads)`` for ``h = 0 .. num_heads - 1``, ``(num_heads,)``."""
    return 2.0 ** (-8.0 * np.arange(1, num_heads + 1) / num_heads)


def alibi_slopes(num_heads: Any) -> np.ndarray:
    """The ALiBi slopes of ``num_heads >= 1`` heads, float64 ``(num_heads,)`` (clause ``alibi.slopes``).

    For ``num_heads`` a power of 2, head ``h`` gets ``m_h = 2^(-8 (h + 1) / num_heads)``: ``1/2, 1/4,
    ..., 1/256`` for 8 heads. Otherwise the closest power of 2 below, ``p``, gives the first ``p``
    heads its slopes, and the other ``num_heads - p`` heads take the first, third, fifth, ... slopes
    of ``2p`` heads, ``2^(-4 (2k + 1) / p)``, as the original ALiBi code does.
    """
    num_heads = check_count("num_heads", num_heads, 1)
    p = 1 << (num_heads.bit_length() - 1)  # the closest power of 2 at most num_heads
    if p == num_heads:
        return _power_of_two_slopes(num_heads)
    return np.concatenate([_power_of_two_slopes(p), _power_of_two_slopes(2 * p)[0::2][:num_heads - p]])
