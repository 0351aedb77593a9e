"""The named departures of ``pe``: the encodings found in the wild, and a few bugs.

The paper interleaves ``PE(pos, 2i) = sin(pos / 10000^(2i/d_model))`` and ``PE(pos, 2i+1) = cos(...)`` (clause
``pe.sinusoid``); widely used code concatenates ``[sin | cos]`` halves, puts ``half_dim - 1`` in the exponent's
denominator, swaps sine and cosine, counts positions from 1, or takes another base. Each is :func:`encoding` with
other parameters, with the bound of :func:`~kqv.conformance.kinds.pe.bound.angle_bound` on its own angles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kqv.reference import sinusoidal_positional_encoding

from ..kinds.pe.bound import angle_bound, pe_bound
from ..kinds.pe.call import encode
from ..kinds.pe.case import PeCase
from ..profiles import WIDTH_TILES
from ..tolerance import Precision
from .entry import Catalogue, Entries, Prediction

ENTRIES = Entries()
departure = ENTRIES.departure
BASES = (100.0, 1000.0, 100000.0, 500000.0, 1000000.0)  # bases seen in the wild beside 10000
PROBE = PeCase(length=12, d_model=16)


@dataclass(frozen=True)
class PeJudging:
    """The precision of the dtype the encoding came back in."""

    precision: Precision


def observe(backend: Any, case: PeCase) -> tuple[np.ndarray, PeCase, PeJudging]:
    result, precision = encode(backend, case)
    return result, case, PeJudging(precision)


def correct(case: PeCase, judging: PeJudging) -> Prediction:
    return Prediction.of(sinusoidal_positional_encoding(case.length, case.d_model),
                         pe_bound(case.length, case.d_model, judging.precision))


def probes(case: PeCase, declaration: Any) -> list[PeCase]:
    """kqv's canonical probe: ``length = 12, d_model = 16``, where ``[sin | cos]`` halves and interleaved pairs
    differ (at ``d_model = 2`` they coincide)."""
    return [PROBE]


def encoding(case: PeCase, precision: Precision, *, halves: bool = False, denominator: float | None = None,
             base: float = 10000.0, first: float = 0.0, swapped: bool = False, divide: float = 1.0) -> Prediction:
    """An encoding ``(length, d_model)`` and its bound: pair ``i`` turns at ``base^(-2i / denominator)``
    (``denominator`` ``d_model`` by default) per position ``(pos + first) / divide``; interleaved (sine in the even
    columns, or cosine with ``swapped``) or in ``[sin | cos]`` halves (an odd last column 0)."""
    n, d = case.length, case.d_model
    pairs = d // 2 if halves else (d + 1) // 2
    x = 2 * np.arange(pairs) / (denominator or d)  # (pairs,): the exponent of each pair's frequency
    angle = ((np.arange(n) + first) / divide)[:, None] * np.power(base, -x)[None, :]  # (n, pairs)
    table, angles, exponents = np.zeros((n, d)), np.zeros((n, d)), np.zeros(d)
    if halves:
        columns = (np.arange(pairs), pairs + np.arange(pairs))  # sines, then cosines
    else:
        columns = (np.arange(0, d, 2), np.arange(1, d, 2))
    first_wave, second_wave = (np.cos, np.sin) if swapped else (np.sin, np.cos)
    for wave, index in ((first_wave, columns[0]), (second_wave, columns[1])):
        table[:, index] = wave(angle[:, :len(index)])
        angles[:, index], exponents[index] = angle[:, :len(index)], x[:len(index)]
    return Prediction.of(table, angle_bound(angles, exponents, precision, base))


@departure("concatenated halves", "[sin | cos] halves instead of interleaved sine and cosine pairs")
def concatenated_halves(case, judging):
    """``PE(pos, i) = sin(pos w_i)``, ``PE(pos, d/2 + i) = cos(pos w_i)``, ``w_i = 10000^(-2i/d_model)``."""
    return encoding(case, judging.precision, halves=True)


@departure("half_dim - 1 in the exponent", "frequencies 10000^(-i / (half_dim - 1)) instead of 10000^(-2i/d_model) "
           "({detail})")
def half_dim_minus_one(case, judging):
    """``w_i = 10000^(-i / max(half_dim - 1, 1))``, ``half_dim = floor(d_model / 2)``, interleaved or in halves
    (tensor2tensor's guard; fairseq divides by ``half_dim - 1`` itself and raises at ``d_model = 2``, 3). In halves an
    odd last column is 0, so ``d_model = 1`` gives a column of zeros."""
    denominator = 2 * max(case.d_model // 2 - 1, 1)
    for layout, halves in (("interleaved", False), ("concatenated halves", True)):
        yield layout, encoding(case, judging.precision, halves=halves, denominator=denominator)


@departure("sin and cos swapped", "cosine in the even columns and sine in the odd ones")
def sin_cos_swapped(case, judging):
    """``PE(pos, 2i) = cos(pos w_i)``, ``PE(pos, 2i+1) = sin(pos w_i)``."""
    return encoding(case, judging.precision, swapped=True)


@departure("positions from 1", "positions counted from 1 instead of 0")
def positions_from_one(case, judging):
    """``PE(pos)`` of ``pos + 1``."""
    return encoding(case, judging.precision, first=1.0)


@departure("positions divided by the length", "the position fed in is pos / length (a normalised position)")
def positions_normalised(case, judging):
    """``PE(pos)`` of ``pos / length`` (clause ``pe.rotation``)."""
    return encoding(case, judging.precision, divide=float(case.length)) if case.length > 1 else None


@departure("another base", "frequencies base^(-2i/d_model) with base {detail} instead of 10000")
def another_base(case, judging):
    """``w_i = b^(-2i/d_model)`` for the bases of ``BASES`` (clause ``pe.wavelengths``)."""
    for base in BASES:
        yield f"{base:g}", encoding(case, judging.precision, base=base)


@departure("angles in float32", "the angles computed in float32, the encoding returned as float64")
def angles_in_float32(case, judging):
    """The spec within the bound of float32 arithmetic, for an encoding returned in float64 (clause ``pe.sinusoid``)."""
    if judging.precision.dtype != "float64":
        return None
    return correct(case, PeJudging(Precision.of("float32")))


@departure("columns past a tile unwritten", "writes only the first {detail} columns; the others stay 0")
def columns_unwritten(case, judging):
    """``PE[:, T:] = 0``, for each tile size ``T < d_model``."""
    reference = correct(case, judging)
    for tile in (size for size in WIDTH_TILES if size < case.d_model):
        (table, bound), = reference.options
        table = table.copy()
        table[:, tile:] = 0.0
        yield str(tile), Prediction.of(table, bound)


CATALOGUE = Catalogue("pe", tuple(ENTRIES), observe, correct, probes)
