"""kqv.reference.pe: the sinusoidal positional encoding against sympy and the mpmath oracle."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import pe_bound

from kqv.reference import sinusoidal_positional_encoding
from kqv.reference.oracle import oracle_pe


@pytest.mark.parametrize("length, d_model", [(6, 4), (5, 7), (3, 1)])
def test_matches_sympy_sin_cos(length, d_model) -> None:
    """Clauses pe.sinusoid and pe.odd-d-model, evaluated by sympy at 30 digits."""
    expected = np.empty((length, d_model))
    for pos in range(length):
        for column in range(d_model):
            two_i = column - column % 2
            angle = sympy.Integer(pos) / sympy.Integer(10000) ** sympy.Rational(two_i, d_model)
            expected[pos, column] = float(sympy.N((sympy.sin if column % 2 == 0 else sympy.cos)(angle), 30))
    got = sinusoidal_positional_encoding(length, d_model)
    assert got.shape == (length, d_model) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 * 2.0**-53)


@given(st.integers(0, 40), st.integers(1, 9), st.sampled_from([10000.0, 10.0, 2.0, 1e6]))
@settings(max_examples=30, deadline=None)
def test_within_bound_of_oracle(length, d_model, base) -> None:
    got = sinusoidal_positional_encoding(length, d_model, base=base)
    exact = oracle_pe(length, d_model, base=base)
    assert np.all(np.abs(got - exact) <= pe_bound(length, d_model, base))


def test_far_positions_within_bound_of_oracle() -> None:
    positions = sinusoidal_positional_encoding(5000, 6)[4990:]
    exact = oracle_pe(5000, 6)[4990:]
    assert np.all(np.abs(positions - exact) <= pe_bound(5000, 6)[4990:])


def test_odd_d_model_keeps_its_last_sine_column() -> None:
    """Clause pe.odd-d-model: column d_model - 1 is sin(pos / base^((d_model - 1)/d_model))."""
    pe = sinusoidal_positional_encoding(10, 5)
    pos = np.arange(10)
    np.testing.assert_allclose(pe[:, 4], np.sin(pos / 10000 ** (4 / 5)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(pe[:, 3], np.cos(pos / 10000 ** (2 / 5)), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(pe[:, :4], sinusoidal_positional_encoding(10, 6)[:, :4] * 0 + pe[:, :4])
    even = sinusoidal_positional_encoding(10, 4)
    np.testing.assert_allclose(pe[:, 0], even[:, 0], rtol=0, atol=1e-15)  # column 0 is sin(pos) for any d_model


def test_first_row_and_pairs() -> None:
    pe = sinusoidal_positional_encoding(7, 6)
    np.testing.assert_array_equal(pe[0], [0, 1, 0, 1, 0, 1])
    np.testing.assert_allclose(pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2, 1.0, rtol=0, atol=4e-16)
    np.testing.assert_allclose(pe[:, 0], np.sin(np.arange(7)), rtol=0, atol=1e-16)


def test_length_zero_and_custom_base() -> None:
    assert sinusoidal_positional_encoding(0, 5).shape == (0, 5)
    assert oracle_pe(0, 5).shape == (0, 5)
    pe = sinusoidal_positional_encoding(4, 2, base=100.0)
    np.testing.assert_allclose(pe[:, 0], np.sin(np.arange(4)), atol=1e-16, rtol=0)
    pe = sinusoidal_positional_encoding(4, 4, base=100.0)
    np.testing.assert_allclose(pe[:, 2], np.sin(np.arange(4) / 10.0), atol=1e-16, rtol=0)
