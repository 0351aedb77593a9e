"""Grouped-query attention in the reference (clauses ``gqa.*``): the head mapping, in every form.

The dense form, the blocked form and the oracle map the heads in one stage (stage 0 of
``kqv.reference.stages``); each must equal ordinary attention on K and V repeated in place, and
must not equal it on K and V tiled, whenever the two maps differ.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kqv.conformance.compare import mismatch
from kqv.reference import attention_weights, scaled_dot_product_attention
from kqv.reference.oracle import oracle_attention_weights, oracle_sdpa
from kqv.reference.stages import kv_head

TINY = np.finfo(np.float64).tiny


@st.composite
def grouped(draw):
    """``(query, key, value, options)`` with H_q = G H_kv heads on axis -3, masks and causal sometimes."""
    kv_heads, group = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch = draw(st.sampled_from([(), (2,)]))
    L, S, E, Ev = (draw(st.integers(1, 5)) for _ in range(4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    query = rng.standard_normal(batch + (kv_heads * group, L, E))
    key = rng.standard_normal(batch + (kv_heads, S, E))
    value = rng.standard_normal(batch + (kv_heads, S, Ev))
    options = {"is_causal": draw(st.booleans()), "causal_alignment": draw(st.sampled_from(["top-left", "bottom-right"]))}
    mask = draw(st.sampled_from([None, "bool", "float"]))
    if mask is not None:
        keep = rng.random((kv_heads * group, L, S)) < 0.7  # one mask per query head
        options["attn_mask"] = keep if mask == "bool" else np.where(keep, rng.standard_normal(keep.shape), -np.inf)
    return query, key, value, options


def _repeated(key: np.ndarray, value: np.ndarray, group: int):
    return np.repeat(key, group, axis=-3), np.repeat(value, group, axis=-3)  # (..., H_q, S, .)


@settings(max_examples=150, deadline=None)
@given(case=grouped(), masked_rows=st.sampled_from(["zeros", "nan", "uniform"]))
def test_every_form_is_attention_on_heads_repeated_in_place(case, masked_rows) -> None:
    query, key, value, options = case
    group = query.shape[-3] // key.shape[-3]
    plain = scaled_dot_product_attention(query, *_repeated(key, value, group), **options, masked_rows=masked_rows,
                                         method="dense")
    dense = scaled_dot_product_attention(query, key, value, **options, masked_rows=masked_rows, enable_gqa=True,
                                         method="dense")
    np.testing.assert_array_equal(dense, plain)  # the same stages on the same numbers: bit for bit
    blocked = scaled_dot_product_attention(query, key, value, **options, masked_rows=masked_rows, enable_gqa=True,
                                           method="blocked", block_size=(2, 2))
    np.testing.assert_allclose(blocked, plain, rtol=1e-13, atol=1e-13)
    weights = attention_weights(query, key, **options, enable_gqa=True, masked_rows=masked_rows)
    np.testing.assert_array_equal(weights, attention_weights(query, np.repeat(key, group, axis=-3), **options,
                                                             masked_rows=masked_rows))


@settings(max_examples=25, deadline=None)
@given(case=grouped())
def test_the_oracle_maps_the_heads_the_same_way(case) -> None:
    query, key, value, options = case
    group = query.shape[-3] // key.shape[-3]
    exact = oracle_sdpa(query, key, value, **options, enable_gqa=True)
    np.testing.assert_array_equal(exact, oracle_sdpa(query, *_repeated(key, value, group), **options))
    got = scaled_dot_product_attention(query, key, value, **options, enable_gqa=True)
    assert mismatch(got, exact, 1e-12 * (1 + np.abs(exact)) + TINY) is None
    weights = oracle_attention_weights(query, key, **options, enable_gqa=True)
    assert weights.shape == query.shape[:-1] + (key.shape[-2],)


def test_tiling_is_another_map_when_both_sides_have_several_heads() -> None:
    # H_q = 4, H_kv = 2: query head 1 reads key/value head 0, not head 1 as tiling would have it.
    rng = np.random.default_rng(0)
    query, key, value = rng.standard_normal((4, 3, 5)), rng.standard_normal((2, 6, 5)), rng.standard_normal((2, 6, 3))
    out = scaled_dot_product_attention(query, key, value, enable_gqa=True)
    tiled = scaled_dot_product_attention(query, np.tile(key, (2, 1, 1)), np.tile(value, (2, 1, 1)))
    assert not np.allclose(out[1], tiled[1]) and np.allclose(out[0], tiled[0])
    assert [kv_head(h, 4, 2) for h in range(4)] == [0, 0, 1, 1]
    assert [kv_head(h, 6, 1) for h in range(6)] == [0] * 6


def test_multi_query_is_broadcasting_one_key_value_head() -> None:
    rng = np.random.default_rng(1)
    query, key, value = rng.standard_normal((2, 5, 3, 4)), rng.standard_normal((2, 1, 6, 4)), rng.standard_normal((2, 1, 6, 2))
    np.testing.assert_array_equal(scaled_dot_product_attention(query, key, value, enable_gqa=True),
                                  scaled_dot_product_attention(query, key, value))


@pytest.mark.parametrize("sdpa", [scaled_dot_product_attention, oracle_sdpa])
@pytest.mark.parametrize(("shapes", "message"), [
    (((6, 3, 4), (4, 5, 4), (4, 5, 2)),
     r"enable_gqa: the query heads H_q = 6 \(query \(6, 3, 4\)\) must be a multiple of the key/value heads H_kv = 4"),
    (((3, 4), (5, 4), (5, 2)), r"query: enable_gqa needs a head axis, shape \(\.\.\., H_q, L, E\) with at least 3 dims"),
    (((2, 3, 4), (5, 4), (5, 2)), r"key: enable_gqa needs a head axis, shape \(\.\.\., H_kv, S, E\)"),
    (((4, 3, 4), (2, 5, 4), (1, 5, 2)), r"value: expected 2 heads on axis -3 like key"),
])
def test_bad_head_counts_are_refused_with_the_shapes(sdpa, shapes, message) -> None:
    query, key, value = (np.zeros(shape) for shape in shapes)
    with pytest.raises(ValueError, match=message):
        sdpa(query, key, value, enable_gqa=True)
    assert sdpa(np.zeros((4, 3, 4)), np.zeros((2, 5, 4)), np.zeros((2, 5, 2)), enable_gqa=True).shape == (4, 3, 2)


def test_enable_gqa_must_be_a_bool_and_without_it_head_counts_must_broadcast() -> None:
    query, key, value = np.zeros((4, 3, 2)), np.zeros((2, 5, 2)), np.zeros((2, 5, 2))
    with pytest.raises(TypeError, match="enable_gqa: expected a bool, got 'yes'"):
        scaled_dot_product_attention(query, key, value, enable_gqa="yes")
    with pytest.raises(ValueError, match="batch dims"):
        scaled_dot_product_attention(query, key, value)


def test_the_blocked_form_is_chosen_for_large_grouped_calls() -> None:
    # "auto" counts the scores with the query's heads: a large GQA call goes blocked.
    from kqv.reference import sdpa as module

    assert module._auto(np.zeros((8, 256, 4)), np.zeros((1, 256, 4)), np.zeros((1, 256, 4)), True) == "blocked"
    assert module._auto(np.zeros((8, 16, 4)), np.zeros((1, 16, 4)), np.zeros((1, 16, 4)), True) == "dense"
