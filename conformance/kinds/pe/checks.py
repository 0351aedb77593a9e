"""pe checks: the sinusoidal positional encoding against the float64 reference.

A wrong encoding is matched against the variants found in the wild (concatenated ``[sin | cos]``
halves, ``half_dim - 1`` in the exponent's denominator, sine and cosine swapped, positions counted
from 1, another base) by the diagnosis of a failure (:mod:`kqv.conformance.diagnosis.catalogue_pe`),
so that a failure names the variant instead of only saying "wrong".
"""

from __future__ import annotations

import numpy as np

from kqv.reference import sinusoidal_positional_encoding

from ...registry import CheckFailure, check, needs
from ...compare import mismatch
from ...dtypes import UNIT_ROUNDOFF
from .bound import pe_bound
from .call import encode
from .strategy import pe_cases

U64 = UNIT_ROUNDOFF["float64"]


def _frequencies(d_model: int, denominator: float) -> np.ndarray:
    return np.power(10000.0, -np.arange(0, d_model, 2) / denominator)  # (ceil(d_model/2),)


def judge(backend, case) -> None:
    result, precision = encode(backend, case)
    bound = pe_bound(case.length, case.d_model, precision)
    found = mismatch(result, sinusoidal_positional_encoding(case.length, case.d_model), bound, "the PE")
    if found is not None:
        raise CheckFailure(str(found))


@check("pe.sinusoid", "pe", lambda d, dtype, p: pe_cases(d, p), per_dtype=False, foundation=True)
def sinusoid(backend, case, context):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(the same angle)."""
    judge(backend, case)


@check("pe.odd-d-model", "pe", lambda d, dtype, p: pe_cases(d, p, parity="odd"), per_dtype=False,
       requires=(needs("odd_d_model", "odd widths d_model"),))
def odd_d_model(backend, case, context):
    """An odd d_model keeps its last, unpaired sine column."""
    judge(backend, case)


@check("pe.bounded", "pe", lambda d, dtype, p: pe_cases(d, p), per_dtype=False)
def bounded(backend, case, context):
    """|PE| <= 1, and each sine-cosine pair lies on the unit circle."""
    result, precision = encode(backend, case)
    bound = pe_bound(case.length, case.d_model, precision)
    found = mismatch(np.abs(result), np.minimum(np.abs(result), 1.0), bound, "|PE|")
    if found is None:
        pairs = case.d_model // 2
        radius = result[:, 0:2 * pairs:2] ** 2 + result[:, 1:2 * pairs:2] ** 2  # (length, pairs)
        pair_bound = 3 * bound[:, 0:2 * pairs:2] + 2 * bound[:, 0:2 * pairs:2] ** 2 + 4 * U64
        found = mismatch(radius, np.ones_like(radius), pair_bound, "PE(pos, 2i)^2 + PE(pos, 2i+1)^2")
    if found is not None:
        raise CheckFailure(str(found))


@check("pe.wavelengths", "pe", lambda d, dtype, p: pe_cases(d, p, parity="even", min_length=2, min_d_model=2),
       per_dtype=False)
def wavelengths(backend, case, context):
    """Pair i turns by w_i = 10000^(-2i/d_model) per position: wavelengths 2 pi 10000^(2i/d_model)."""
    result, precision = encode(backend, case)
    bound = pe_bound(case.length, case.d_model, precision)
    measured = np.arctan2(result[1, 0::2], result[1, 1::2])  # (d_model/2,): the angle at pos = 1
    expected = _frequencies(case.d_model, case.d_model)
    found = mismatch(measured, expected, 3 * bound[1, 0::2] + 4 * U64, "the frequencies (the angles at pos = 1)")
    if found is not None:
        ratios = expected[1:] / expected[:-1] if len(expected) > 1 else np.array([])
        seen = measured[1:] / measured[:-1] if len(measured) > 1 else np.array([])
        raise CheckFailure(f"{found}; measured frequencies {np.array2string(measured[:6], precision=6)}, expected "
                           f"{np.array2string(expected[:6], precision=6)} (ratio {ratios[0] if len(ratios) else 1:.6g} "
                           f"per pair, measured {seen[0] if len(seen) else 1:.6g})")


@check("pe.rotation", "pe", lambda d, dtype, p: pe_cases(d, p, parity="even", min_length=2, min_d_model=2),
       per_dtype=False)
def rotation(backend, case, context):
    """PE(pos + k) is PE(pos) with pair i rotated by the angle k w_i."""
    result, precision = encode(backend, case)
    bound = pe_bound(case.length, case.d_model, precision)
    shift = max(1, case.length // 3)
    angle = shift * _frequencies(case.d_model, case.d_model)  # (pairs,)
    sin_now, cos_now = result[:-shift, 0::2], result[:-shift, 1::2]  # (length - k, pairs)
    rotated = np.empty_like(result[shift:])
    rotated[:, 0::2] = np.cos(angle) * sin_now + np.sin(angle) * cos_now  # sin(a + b)
    rotated[:, 1::2] = -np.sin(angle) * sin_now + np.cos(angle) * cos_now  # cos(a + b)
    allowed = bound[shift:] + 2 * bound[:-shift] + 8 * U64 * (1 + np.abs(np.repeat(angle, 2)))
    found = mismatch(result[shift:], rotated, allowed, f"PE(pos + {shift}) against R({shift} w_i) PE(pos)")
    if found is not None:
        raise CheckFailure(str(found))
