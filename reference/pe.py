"""The sinusoidal positional encoding (Vaswani et al. 2017, section 3.5), in float64."""

from __future__ import annotations

from typing import Any

import numpy as np

from .validation import check_count, check_positive_real


def sinusoidal_positional_encoding(length: int, d_model: int, base: Any = 10000.0) -> np.ndarray:
    """``PE (length, d_model)`` with ``PE[pos, 2i] = sin(pos / base^(2i/d_model))`` and ``PE[pos, 2i+1] = cos(...)``.

    Clause ``pe.sinusoid``: columns ``2i`` and ``2i+1`` share the angle
    ``pos / base^(2i/d_model)``. Clause ``pe.odd-d-model``: for odd ``d_model`` the
    last column ``d_model - 1`` (even) is a sine with no cosine partner.

    The angle is computed as ``pos * base^(-2i/d_model)``; its float64 error is at
    most about ``(2 + |2i/d_model * ln(base)|) u |angle|``, which ``sin``/``cos`` turn
    into the same absolute error of PE (``u = 2^-53``).

    ``length`` is an integer ``>= 0`` (0 gives shape ``(0, d_model)``), ``d_model`` an
    integer ``>= 1`` and ``base`` a finite number ``> 0``.
    """
    length = check_count("length", length, 0)
    d_model = check_count("d_model", d_model, 1)
    base = check_positive_real("base", base)
    two_i = np.arange(0, d_model, 2, dtype=np.float64)  # (ceil(d_model/2),): 2i for each sine column
    inverse_frequency = np.power(base, -two_i / d_model)  # base^(-2i/d_model)
    angle = np.arange(length, dtype=np.float64)[:, None] * inverse_frequency[None, :]  # (length, ceil(d_model/2))
    encoding = np.empty((length, d_model), dtype=np.float64)
    encoding[:, 0::2] = np.sin(angle)  # (length, ceil(d_model/2)), clause pe.sinusoid
    encoding[:, 1::2] = np.cos(angle[:, : d_model // 2])  # (length, floor(d_model/2)); odd d_model: pe.odd-d-model
    return encoding
