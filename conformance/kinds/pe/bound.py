"""The bound of a ``pe`` encoding: the error of its angles, of ``sin`` and ``cos``, and of storing it."""

from __future__ import annotations

import numpy as np

from ...tolerance import Precision


def pe_bound(length: int, d_model: int, precision: Precision, base: float = 10000.0) -> np.ndarray:
    """Allowed error of each PE element, ``(length, d_model)`` (clauses ``pe.sinusoid``, ``pe.odd-d-model``).

    The frequency ``w_i = base^(-x)``, ``x = 2i/d_model``, computed by ``exp`` or ``pow`` of a rounded
    ``x ln(base)`` is off by ``(3 + 3 x ln(base)) u_a`` relatively; rounding ``pos`` and the product
    ``pos w_i`` add ``2 u_a``, so the angle is off by ``(5 + 3 x ln(base)) u_a |angle|``; ``sin`` and
    ``cos`` are 1-Lipschitz and add ``2 u_a`` of their own; storing the result adds ``u_s + eta_s``.
    """
    column = np.arange(d_model)
    exponent = (column - column % 2) / d_model  # x = 2i/d_model for both columns of pair i
    angle = np.arange(length, dtype=np.float64)[:, None] * np.power(base, -exponent)[None, :]  # (length, d_model)
    return angle_bound(angle, exponent, precision, base)


def angle_bound(angle: np.ndarray, exponent: np.ndarray, precision: Precision, base: float = 10000.0) -> np.ndarray:
    """The bound of :func:`pe_bound` for any layout: ``angle (length, d_model)`` the angle each element is the sine or
    cosine of, ``exponent (d_model,)`` the ``x`` of its frequency ``base^(-x)``."""
    u_a = precision.accumulation
    return (5 + 3 * exponent * abs(np.log(base))) * u_a * np.abs(angle) + 2 * u_a + precision.storage \
        + precision.underflow
