"""kqv.reference.masking and the masked-row conventions of the reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kqv.reference import attention_weights, causal_mask, scaled_dot_product_attention
from kqv.reference.oracle import oracle_sdpa


def test_causal_index_rule_on_l2_s4_written_out() -> None:
    """Clauses mask.causal.top-left (j <= i) and mask.causal.bottom-right (j <= i + S - L)."""
    top_left = np.array([[1, 0, 0, 0],
                         [1, 1, 0, 0]], dtype=bool)
    bottom_right = np.array([[1, 1, 1, 0],
                             [1, 1, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(causal_mask(2, 4), top_left)
    np.testing.assert_array_equal(causal_mask(2, 4, "bottom-right"), bottom_right)


def test_causal_index_rule_on_l4_s2_written_out() -> None:
    top_left = np.array([[1, 0], [1, 1], [1, 1], [1, 1]], dtype=bool)
    bottom_right = np.array([[0, 0], [0, 0], [1, 0], [1, 1]], dtype=bool)  # the first L - S queries see nothing
    np.testing.assert_array_equal(causal_mask(4, 2), top_left)
    np.testing.assert_array_equal(causal_mask(4, 2, "bottom-right"), bottom_right)


@given(st.integers(0, 7), st.integers(0, 7))
@settings(max_examples=40, deadline=None)
def test_causal_alignments_coincide_when_square_and_follow_their_rule(L, S) -> None:
    for alignment, offset in (("top-left", 0), ("bottom-right", S - L)):
        mask = causal_mask(L, S, alignment)
        assert mask.shape == (L, S) and mask.dtype == np.bool_
        for i in range(L):
            for j in range(S):
                assert mask[i, j] == (j <= i + offset)
    if L == S:
        np.testing.assert_array_equal(causal_mask(L, S), causal_mask(L, S, "bottom-right"))


def test_is_causal_uses_the_alignment() -> None:
    rng = np.random.default_rng(0)
    query, key, value = rng.standard_normal((2, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 5))
    for alignment in ("top-left", "bottom-right"):
        got = scaled_dot_product_attention(query, key, value, is_causal=True, causal_alignment=alignment)
        expected = scaled_dot_product_attention(query, key, value, attn_mask=causal_mask(2, 4, alignment))
        np.testing.assert_array_equal(got, expected)
    weights = attention_weights(query, key, is_causal=True, causal_alignment="bottom-right")
    assert np.all(weights[0, 3] == 0) and np.all(weights[0, :3] > 0) and np.all(weights[1] > 0)


# --------------------------------------------------------------------------- fully masked rows


def _fully_masked_case():
    rng = np.random.default_rng(1)
    query, key, value = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False  # row 1: every key masked
    return query, key, value, mask


@pytest.mark.parametrize("mask_kind", ["bool", "float"])
def test_fully_masked_row_conventions(mask_kind) -> None:
    """Clause mask.fully-masked-row: zeros, NaN or the mean of V over all S keys."""
    query, key, value, mask = _fully_masked_case()
    if mask_kind == "float":
        mask = np.where(mask, 0.25, -np.inf)
    zeros = scaled_dot_product_attention(query, key, value, attn_mask=mask)
    nan = scaled_dot_product_attention(query, key, value, attn_mask=mask, masked_rows="nan")
    uniform = scaled_dot_product_attention(query, key, value, attn_mask=mask, masked_rows="uniform")
    np.testing.assert_array_equal(zeros[1], [0.0, 0.0])
    assert np.all(np.isnan(nan[1]))
    np.testing.assert_allclose(uniform[1], value.mean(axis=0), rtol=1e-15)
    for other in (nan, uniform):  # the other rows do not depend on the convention
        np.testing.assert_array_equal(other[[0, 2]], zeros[[0, 2]])
    assert np.all(np.isfinite(zeros)) and np.all(np.isfinite(uniform))
    weights = attention_weights(query, key, attn_mask=mask, masked_rows="uniform")
    np.testing.assert_array_equal(weights[1], np.full(5, 0.2))
    for convention in ("zeros", "nan", "uniform"):
        exact = oracle_sdpa(query, key, value, attn_mask=mask, masked_rows=convention)
        got = scaled_dot_product_attention(query, key, value, attn_mask=mask, masked_rows=convention)
        np.testing.assert_allclose(got, exact, rtol=1e-14, atol=1e-15, equal_nan=True)


def test_bottom_right_with_more_queries_than_keys_masks_whole_rows() -> None:
    rng = np.random.default_rng(2)
    query, key, value = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    got = scaled_dot_product_attention(query, key, value, is_causal=True, causal_alignment="bottom-right",
                                       masked_rows="nan")
    assert np.all(np.isnan(got[:2])) and np.all(np.isfinite(got[2:]))
    np.testing.assert_array_equal(got[2], value[0])  # query 2 sees key 0 only


def test_no_keys_at_all() -> None:
    query, key, value = np.ones((3, 2)), np.ones((0, 2)), np.ones((0, 4))
    np.testing.assert_array_equal(scaled_dot_product_attention(query, key, value), np.zeros((3, 4)))
    np.testing.assert_array_equal(scaled_dot_product_attention(query, key, value, masked_rows="uniform"),
                                  np.zeros((3, 4)))
    assert np.all(np.isnan(scaled_dot_product_attention(query, key, value, masked_rows="nan")))


# --------------------------------------------------------------------------- masked keys have zero weight


@given(hnp.arrays(np.bool_, (3, 6)), hnp.arrays(np.float64, (6, 2), elements=st.floats(-1e300, 1e300)),
       st.booleans())
@settings(max_examples=60, deadline=None)
def test_masked_keys_do_not_influence_output_bitwise(mask, replacement, additive) -> None:
    """Clause mask.zero-weight: changing masked keys' values and keys leaves the output bit for bit."""
    rng = np.random.default_rng(3)
    query, key, value = rng.standard_normal((3, 4)), rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    attn_mask = np.where(mask, rng.standard_normal((3, 6)), -np.inf) if additive else mask
    masked_everywhere = ~mask.any(axis=0)  # keys masked for every query
    changed_value = np.where(masked_everywhere[:, None], replacement, value)
    changed_key = np.where(masked_everywhere[:, None], 1e3 * rng.standard_normal((6, 4)), key)
    before = scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
    after = scaled_dot_product_attention(query, changed_key, changed_value, attn_mask=attn_mask)
    np.testing.assert_array_equal(before, after)
    weights = attention_weights(query, key, attn_mask=attn_mask)
    assert np.all(weights[~mask] == 0.0)


def test_zero_weight_even_against_a_huge_additive_entry() -> None:
    query, key, value = np.zeros((1, 2)), np.zeros((3, 2)), np.array([[1.0], [2.0], [4.0]])
    mask = np.array([[1e300, -np.inf, -1e300]])
    np.testing.assert_array_equal(scaled_dot_product_attention(query, key, value, attn_mask=mask), [[1.0]])
    np.testing.assert_array_equal(attention_weights(query, key, attn_mask=mask), [[1.0, 0.0, 0.0]])
