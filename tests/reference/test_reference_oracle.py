"""kqv.reference.oracle: the mpmath oracle itself, checked against sympy and for correct rounding."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import example, given, settings
from hypothesis import strategies as st
from reference_helpers import sdpa_bound

from kqv.reference.oracle import oracle_attention_weights, oracle_mha, oracle_pe, oracle_sdpa, oracle_softmax, to_float64

TINY_SUBNORMAL = 2.0**-1074


@pytest.mark.parametrize("exact, rounded", [
    (Fraction(1) + Fraction(1, 2**53), 1.0),  # a tie rounds to even
    (Fraction(1) + Fraction(3, 2**53), 1.0 + 2.0**-51),  # a tie rounds to even, upwards
    (Fraction(1) + Fraction(1, 2**53) + Fraction(1, 2**80), 1.0 + 2.0**-52),  # just above the tie
    (Fraction(3, 2**1075), 2.0**-1073),  # a subnormal tie rounds to even
    (Fraction(5, 2**1076), TINY_SUBNORMAL),  # 1.25 x the smallest subnormal
    (Fraction(1, 2**1076), 0.0),
    (Fraction(2**55 - 5, 2**1077), 2.0**-1022 - TINY_SUBNORMAL),  # 0.375 subnormal spacings below 2^-1022: one rounding
    (Fraction(-7, 3), -7 / 3),
    (Fraction(2**1024), float("inf")),
])
def test_to_float64_rounds_to_nearest_even(exact, rounded) -> None:
    with mpmath.workprec(2000):
        value = mpmath.mpf(exact.numerator) / exact.denominator
    assert to_float64(value) == rounded
    assert to_float64(mpmath.nan) != to_float64(mpmath.nan)
    assert to_float64(mpmath.ninf) == float("-inf")


@given(st.floats(allow_nan=False, allow_infinity=False, width=64), st.floats(-1, 1))
@example(x=2.0**-1022, nudge=-0.625)  # rounded to 53 bits first, it became a tie and went up to 2^-1022 (CI, stop 31)
@settings(max_examples=100, deadline=None)
def test_to_float64_matches_exact_fraction_rounding(x, nudge) -> None:
    with mpmath.workprec(300):
        value = mpmath.mpf(x) * (1 + mpmath.mpf(nudge) * mpmath.mpf(2) ** -52)
        sign, mantissa, exponent, _ = value._mpf_ if value else (0, 0, 0, 0)
    exact = Fraction(mantissa) * Fraction(2) ** exponent * (-1 if sign else 1)
    try:
        expected = float(exact)  # float(Fraction) rounds correctly
    except OverflowError:  # past the float64 range even after rounding
        expected = float("-inf") if sign else float("inf")
    assert to_float64(value) == expected


def test_oracle_sdpa_matches_sympy_to_40_digits() -> None:
    q = [[1.5, -0.25], [0.75, 2.0]]
    k = [[1.0, 0.5], [-1.25, 0.5], [0.0, 3.0]]
    v = [[2.0], [-1.0], [0.5]]
    Q, K, V = (sympy.Matrix([[sympy.Rational(x) for x in row] for row in m]) for m in (q, k, v))
    X = Q * K.T / sympy.sqrt(2)
    P = sympy.Matrix([[sympy.exp(X[i, j]) / sum(sympy.exp(X[i, c]) for c in range(3)) for j in range(3)]
                      for i in range(2)])
    expected = sympy.N(P * V, 60)
    got = oracle_sdpa(np.array(q), np.array(k), np.array(v), dps=60, as_mpf=True)
    assert got.dtype == object and isinstance(got[0, 0], mpmath.mpf)
    for i in range(2):
        assert abs(sympy.Float(mpmath.nstr(got[i, 0], 60), 60) - expected[i, 0]) < sympy.Float("1e-40")
    rounded = oracle_sdpa(np.array(q), np.array(k), np.array(v))
    assert rounded.dtype == np.float64
    np.testing.assert_array_equal(rounded, [[to_float64(x)] for x in got[:, 0]])


def test_oracle_softmax_and_weights_match_sympy() -> None:
    x = np.array([[0.5, -3.0, 2.0], [1e3, 1e3 - 1, -1e3]])
    for i, row in enumerate(x):
        exps = [sympy.exp(sympy.Rational(v)) for v in row]
        expected = [float(sympy.N(e / sum(exps), 40)) for e in exps]
        np.testing.assert_array_equal(oracle_softmax(x)[i], expected)
    weights = oracle_attention_weights(np.array([[1.0]]), np.array([[2.0], [0.0]]), scale=1.0)
    np.testing.assert_array_equal(weights, [[float(sympy.N(1 / (1 + sympy.exp(-2)), 40)),
                                             float(sympy.N(1 / (1 + sympy.exp(2)), 40))]])


def test_more_digits_do_not_change_the_rounded_result() -> None:
    rng = np.random.default_rng(0)
    query, key, value = rng.standard_normal((2, 3, 4)) * 30, rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    mask = rng.random((3, 5)) < 0.6
    mask[:, 1] = True
    np.testing.assert_array_equal(oracle_sdpa(query, key, value, attn_mask=mask, dps=50),
                                  oracle_sdpa(query, key, value, attn_mask=mask, dps=100))
    with_50 = oracle_sdpa(query, key, value, dps=50, as_mpf=True)
    with_100 = oracle_sdpa(query, key, value, dps=100, as_mpf=True)
    assert max(abs(a - b) for a, b in zip(with_50.ravel(), with_100.ravel())) < mpmath.mpf("1e-45")
    np.testing.assert_array_equal(oracle_pe(9, 5, dps=40), oracle_pe(9, 5, dps=90))


def test_oracle_mha_unbatched_and_as_mpf() -> None:
    rng = np.random.default_rng(1)
    args = dict(w_q=rng.standard_normal((4, 4)), w_k=rng.standard_normal((4, 4)), w_v=rng.standard_normal((4, 2)),
                w_o=rng.standard_normal((2, 4)), b_o=rng.standard_normal(4))
    x_q, x_kv = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    unbatched = oracle_mha(x_q, x_kv, **args, num_heads=2, as_mpf=True)
    batched = oracle_mha(x_q[None], x_kv[None], **args, num_heads=2)
    assert unbatched.shape == (3, 4) and isinstance(unbatched[0, 0], mpmath.mpf)
    np.testing.assert_array_equal(np.vectorize(to_float64)(unbatched), batched[0])


def test_dps_must_be_an_integer_of_at_least_15() -> None:
    with pytest.raises(ValueError, match=r"dps: expected an integer >= 15, got 10"):
        oracle_sdpa(np.ones((1, 1)), np.ones((1, 1)), np.ones((1, 1)), dps=10)
    with pytest.raises(ValueError, match=r"dps: expected an integer >= 15, got 20\.5"):
        oracle_pe(2, 2, dps=20.5)


def _float32_attention(query, key, value):
    """Attention carried out in float32 arithmetic: what the bound must reject."""
    q, k, v = (a.astype(np.float32) for a in (query, key, value))
    scores = q @ k.T * np.float32(1 / np.sqrt(q.shape[-1]))
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return ((p / p.sum(axis=-1, keepdims=True)) @ v).astype(np.float64)


def test_bound_rejects_float32_arithmetic() -> None:
    """The oracle bound can fail: float32 arithmetic on float64 inputs lands far outside it."""
    rng = np.random.default_rng(2)
    worst = 0.0
    for _ in range(10):
        query, key, value = rng.standard_normal((4, 8)), rng.standard_normal((6, 8)), rng.standard_normal((6, 3))
        exact = oracle_sdpa(query, key, value)
        bound = sdpa_bound(query, key, value, oracle_attention_weights(query, key))
        worst = max(worst, float(np.max(np.abs(_float32_attention(query, key, value) - exact) / bound)))
    assert worst > 1000, worst
