"""Comparing an output with what the spec expects, element by element, within a bound.

A failure reads like ``numpy.testing.assert_allclose``: how many elements are off, the worst one
(where, got, expected, its error against its own bound) and the worst relative error; NaN or inf
where the spec has a number is counted and located separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
        where = f"({', '.join(str(i) for i in self.index)})"
        head = f"{self.count} of {self.total} elements of {self.what} are outside the bound"
        if self.nonfinite:
            head += f" ({self.nonfinite} of them NaN or inf where the spec has a number)"
        if np.isnan(self.expected):
            return f"{head}; at {where}: got {self.actual!r}, the spec asks for NaN"
        if not np.isfinite(self.actual):
            return f"{head}; first at {where}: got {self.actual!r}, expected {self.expected:.6g}"
        ratio = self.error / self.bound if self.bound > 0 else float("inf")
        times = "(the bound is 0: an exact value is required)" if self.bound == 0 else f"({ratio:.3g} x the bound)"
        return (f"{head}; worst at {where}: got {self.actual:.9g}, expected {self.expected:.9g}, "
                f"|error| {self.error:.3g} > bound {self.bound:.3g} {times}; "
                f"worst relative error {self.worst_relative:.3g}")


def mismatch(actual: np.ndarray, expected: np.ndarray, bound: np.ndarray, what: str = "the output") -> Mismatch | None:
    """None when every element of ``actual`` is within ``bound`` of ``expected``, else the :class:`Mismatch`.

    Where ``expected`` is NaN, ``actual`` must be NaN; elsewhere it must be finite and
    ``|actual - expected| <= bound``. All three broadcast to ``actual``'s shape.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected, bound = (np.broadcast_to(np.asarray(a, dtype=np.float64), actual.shape) for a in (expected, bound))
    want_nan = np.isnan(expected)
    with np.errstate(invalid="ignore", over="ignore"):
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
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.where(bad, error / np.where(bound > 0, bound, np.finfo(np.float64).tiny), -1.0)
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), actual.shape))
    worst_relative = float(np.max(np.where(bad & np.isfinite(relative), relative, 0.0)))
    return Mismatch(what, int(bad.sum()), int(actual.size), index, float(actual[index]), float(expected[index]),
                    float(error[index]), float(bound[index]), worst_relative, int(bad_number.sum()))
