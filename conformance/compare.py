"""Comparing an output with what the spec expects, element by element, within a bound.

:func:`mismatch` measures: how many elements are off, the worst one (where, got, expected, its
error against its own bound), the worst relative error, and NaN or inf where the spec has a
number, counted and located separately. The words are :func:`kqv.conformance.messages.outside_bound`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .messages import outside_bound


@dataclass(frozen=True)
class Mismatch:
    """Elements of ``what`` outside their bound."""

    what: str
    count: int
    total: int
    index: tuple[int, ...]
    actual: float
    expected: float
    error: float
    bound: float
    worst_relative: float
    nonfinite: int

    def __str__(self) -> str:
        return outside_bound(self)


def mismatch(actual: np.ndarray, expected: np.ndarray, bound: np.ndarray, what: str = "the output") -> Mismatch | None:
    """None when every element of ``actual`` is within ``bound`` of ``expected``, else the :class:`Mismatch`.

    Where ``expected`` is NaN, ``actual`` must be NaN; elsewhere it must be finite and
    ``|actual - expected| <= bound``. All three broadcast to ``actual``'s shape.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected, bound = (np.broadcast_to(np.asarray(a, dtype=np.float64), actual.shape) for a in (expected, bound))
    want_nan = np.isnan(expected)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # relative error: 0 where expected is 0
        error = np.abs(actual - expected)
        bad_number = ~want_nan & ~np.isfinite(actual)
        bad = np.where(want_nan, ~np.isnan(actual), bad_number | (error > bound))
        relative = np.where(np.isfinite(error) & (expected != 0), error / np.abs(expected), 0.0)
    if not bad.any():
        return None
    if bad_number.any():
        index = tuple(int(i) for i in np.argwhere(bad_number)[0])
    elif (want_nan & bad).any():
        index = tuple(int(i) for i in np.argwhere(want_nan & bad)[0])
    else:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # error / a subnormal bound may be inf
            excess = np.where(bad, error / np.where(bound > 0, bound, np.finfo(np.float64).tiny), -1.0)
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), actual.shape))
    worst_relative = float(np.max(np.where(bad & np.isfinite(relative), relative, 0.0)))
    return Mismatch(what, int(bad.sum()), int(actual.size), index, float(actual[index]), float(expected[index]),
                    float(error[index]), float(bound[index]), worst_relative, int(bad_number.sum()))
