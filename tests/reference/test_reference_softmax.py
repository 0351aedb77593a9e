"""kqv.reference.softmax: the stable float64 softmax."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kqv.reference import softmax
from kqv.reference.oracle import oracle_softmax

U = 2.0**-53


def test_matches_sympy_definition() -> None:
    """Clause softmax.definition: exp(x_j) / sum_k exp(x_k), exactly, then 30 digits."""
    row = [sympy.Rational(3, 2), sympy.Integer(-2), sympy.Rational(1, 8), sympy.Integer(0)]
    total = sum(sympy.exp(v) for v in row)
    expected = [float(sympy.N(sympy.exp(v) / total, 30)) for v in row]
    np.testing.assert_allclose(softmax(np.array([float(v) for v in row])), expected, rtol=1e-15)


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                  elements=st.floats(-1e6, 1e6, allow_nan=False), fill=st.nothing()),
       st.integers(-1, 0))
@settings(max_examples=60, deadline=None)
def test_within_bound_of_oracle_along_any_axis(x, axis) -> None:
    """Clause softmax.stable: shifting by the max keeps every entry within a few ulps times exp of |x| u."""
    got = softmax(x, axis=axis)
    exact = oracle_softmax(x, axis=axis)
    n = x.shape[axis]
    spread = np.max(np.abs(x - np.max(x, axis=axis, keepdims=True)), axis=axis, keepdims=True)
    bound = (np.expm1(4 * U * spread) + 8 * n * U) * exact + np.finfo(float).tiny
    assert np.all(np.abs(got - exact) <= bound)
    np.testing.assert_allclose(got.sum(axis=axis), 1.0, rtol=0, atol=4 * n * U)  # clause softmax.rows-sum-to-one


@pytest.mark.parametrize("magnitude", [1e3, 1e6, 1e300])
def test_no_overflow_or_nan_for_huge_logits(magnitude) -> None:
    x = np.array([[magnitude, magnitude, -magnitude], [-magnitude, -magnitude, -magnitude]])
    np.testing.assert_array_equal(softmax(x), [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])


def test_where_and_minus_inf_give_exact_zeros_and_empty_rows_zeros() -> None:
    x = np.array([[1.0, 2.0, 3.0], [0.0, -np.inf, 0.0], [-np.inf, -np.inf, -np.inf], [5.0, 5.0, 5.0]])
    where = np.array([[True, False, True], [True, True, True], [True, True, True], [False, False, False]])
    got = softmax(x, where=where)
    e = np.exp([-2.0, 0.0])
    np.testing.assert_allclose(got[0], [e[0] / e.sum(), 0.0, e[1] / e.sum()], rtol=1e-15)
    np.testing.assert_array_equal(got[1], [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(got[2:], np.zeros((2, 3)))
    np.testing.assert_array_equal(oracle_softmax(x, where=where)[1:], got[1:])


def test_softmax_refuses_bad_input() -> None:
    with pytest.raises(TypeError, match=r"x: expected a floating dtype .*got int64"):
        softmax(np.arange(3))
    with pytest.raises(TypeError, match=r"where: expected a bool array, got dtype float64"):
        softmax(np.ones(3), where=np.ones(3))
    with pytest.raises(ValueError, match=r"where: shape \(4,\) does not broadcast to x's shape \(2, 3\)"):
        softmax(np.ones((2, 3)), where=np.ones(4, dtype=bool))
