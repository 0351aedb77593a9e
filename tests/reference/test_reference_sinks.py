"""Attention sinks in the reference's sdpa (clauses ``sinks.*``): the forms agree, the sink is one more term of the
denominator, the weights sum to 1 - p_sink, a row without a key is 0 whatever the fully-masked-row convention, a sink
far below the scores is no sink, and bad sinks are refused with a message naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kqv.conformance.compare import mismatch
from kqv.conformance.kinds.sdpa.bound import sdpa_expectation
from kqv.conformance.kinds.sdpa.case import SdpaInputs
from kqv.conformance.tolerance import Precision
from kqv.reference import attention_weights, scaled_dot_product_attention
from kqv.reference.oracle import oracle_attention_weights, oracle_sdpa

TINY = np.finfo(np.float64).tiny
ALIGNMENTS = ("top-left", "bottom-right")
CONVENTIONS = ("zeros", "nan", "uniform")


@st.composite
def calls(draw):
    """query (B, H, L, E), key and value (B, H, S, .), sinks (H,) of either sign and any size next to the scores, a
    bool mask that may leave rows without a key, an alignment, is_causal, a window, lengths and a cap now and then."""
    B, H, L, S, E = (draw(st.integers(low, high)) for low, high in ((1, 2), (1, 3), (1, 5), (1, 6), (1, 4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    query, key, value = (rng.standard_normal((B, H, n, E)) for n in (L, S, S))
    level = draw(st.sampled_from([0.0, 2.0, -2.0, 10.0, -30.0, 800.0, -800.0]))
    sinks = level + draw(st.sampled_from([0.0, 1.0, 5.0])) * rng.standard_normal(H)
    mask = rng.random((B, H, L, S)) < draw(st.sampled_from([0.3, 0.7, 1.0]))
    side = st.one_of(st.none(), st.integers(0, 4))
    lengths = np.array(draw(st.lists(st.integers(0, S), min_size=B, max_size=B))) if draw(st.booleans()) else None
    return query, key, value, sinks, dict(attn_mask=mask, causal_alignment=draw(st.sampled_from(ALIGNMENTS)),
                                          is_causal=draw(st.booleans()), window=draw(st.one_of(st.none(),
                                                                                               st.tuples(side, side))),
                                          kv_lengths=lengths, softcap=draw(st.sampled_from([None, 1.0, 30.0])),
                                          masked_rows=draw(st.sampled_from(CONVENTIONS)))


def _bound(query, key, value, sinks, kwargs):
    variants = (("sinks", tuple(sinks)),) + tuple(
        (name, kwargs[keyword] if name != "kv_lengths" else tuple(kwargs[keyword]))
        for name, keyword in (("window", "window"), ("softcap", "softcap"), ("kv_lengths", "kv_lengths"))
        if kwargs[keyword] is not None)
    inputs = SdpaInputs(query, key, value, kwargs["attn_mask"], kwargs["is_causal"], None, variants=variants)
    return sdpa_expectation(inputs, Precision.of("float64"), kwargs["causal_alignment"],
                            kwargs["masked_rows"]).bound + TINY


@settings(max_examples=100, deadline=None)
@given(call=calls(), block=st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_dense_blocked_and_oracle_agree_with_sinks(call, block) -> None:
    query, key, value, sinks, kwargs = call
    dense = scaled_dot_product_attention(query, key, value, sinks=sinks, **kwargs, method="dense")
    blocked = scaled_dot_product_attention(query, key, value, sinks=sinks, **kwargs, method="blocked",
                                           block_size=block)
    exact = oracle_sdpa(query, key, value, sinks=sinks, **kwargs, dps=40)
    bound = _bound(query, key, value, sinks, kwargs)
    assert mismatch(blocked, dense, 2 * bound) is None
    assert mismatch(dense, exact, bound) is None
    assert np.all(np.isfinite(dense))  # clause sinks.empty-row: no NaN, whatever masked_rows


def test_the_sink_is_one_more_term_of_the_denominator() -> None:
    """Clause sinks.formula: p_j = exp(x_j) / (exp(sink_h) + sum_k exp(x_k)), head h with sinks[h]."""
    rng = np.random.default_rng(1)
    query, key = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 6, 5))
    sinks = np.array([-1.0, 0.5, 3.0])
    x = query @ np.swapaxes(key, -1, -2) / np.sqrt(5)  # (2, 3, 4, 6)
    expected = np.exp(x) / (np.exp(sinks)[:, None, None] + np.exp(x).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(attention_weights(query, key, sinks=sinks), expected, rtol=1e-14)
    np.testing.assert_allclose(oracle_attention_weights(query, key, sinks=sinks), expected, rtol=1e-14)


def test_the_weights_sum_to_one_minus_the_sinks_share() -> None:
    """Clause sinks.mass: with every value 1 the output is 1 - p_sink; the same sinks per batch entry, (B, H_q),
    line up from the right."""
    rng = np.random.default_rng(2)
    query, key = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 6, 5))
    sinks = np.array([[-1.0, 0.5, 3.0], [2.0, 0.0, -4.0]])  # (B, H_q)
    weights = attention_weights(query, key, sinks=sinks)
    out = scaled_dot_product_attention(query, key, np.ones((2, 3, 6, 1)), sinks=sinks)
    np.testing.assert_allclose(out[..., 0], weights.sum(axis=-1), rtol=1e-14)
    x = query @ np.swapaxes(key, -1, -2) / np.sqrt(5)
    share = np.exp(sinks)[..., None] / (np.exp(sinks)[..., None] + np.exp(x).sum(axis=-1))  # (B, H_q, L)
    np.testing.assert_allclose(out[..., 0], 1 - share, rtol=1e-14)
    assert np.all(out < 1)


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("method", ["dense", "blocked"])
def test_a_row_without_a_key_is_zero_whatever_the_convention(convention: str, method: str) -> None:
    """Clause sinks.empty-row: the denominator exp(sink - sink) = 1 leaves the row 0, not NaN nor the mean of V."""
    rng = np.random.default_rng(3)
    query, key, value = rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((1, 2, 5, 4)), \
        rng.standard_normal((1, 2, 5, 2))
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False  # query 1 keeps no key
    out = scaled_dot_product_attention(query, key, value, mask, sinks=np.array([0.0, 700.0]), masked_rows=convention,
                                       method=method)
    np.testing.assert_array_equal(out[..., 1, :], 0.0)
    weights = attention_weights(query, key, mask, sinks=np.array([0.0, -700.0]), masked_rows=convention)
    np.testing.assert_array_equal(weights[..., 1, :], 0.0)
    without = scaled_dot_product_attention(query, key, value, mask, masked_rows=convention, method=method)
    assert convention == "zeros" or not np.array_equal(without[..., 1, :], out[..., 1, :])


@pytest.mark.parametrize("method", ["dense", "blocked"])
def test_a_sink_far_below_is_no_sink_and_far_above_takes_every_weight(method: str) -> None:
    """Clause sinks.limit: exp(sink - m) underflows to 0 below the scores; above them every weight does."""
    rng = np.random.default_rng(4)
    query, key, value = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    plain = scaled_dot_product_attention(query, key, value, method=method)
    low = scaled_dot_product_attention(query, key, value, sinks=np.full(2, -800.0), method=method)
    high = scaled_dot_product_attention(query, key, value, sinks=np.full(2, 1e300), method=method)
    np.testing.assert_array_equal(low, plain)
    np.testing.assert_array_equal(high, 0.0)


def test_a_sink_goes_with_its_query_head_under_grouped_query_attention() -> None:
    """Clause sinks.head-order: query heads 0 and 1 share key/value head 0 and differ only by their sinks."""
    rng = np.random.default_rng(5)
    query = np.broadcast_to(rng.standard_normal((1, 1, 3, 4)), (1, 4, 3, 4))  # (1, H_q = 4, 3, 4): equal heads
    key, value = rng.standard_normal((1, 2, 5, 4)), np.ones((1, 2, 5, 1))
    sinks = np.array([-50.0, 50.0, -50.0, 50.0])
    out = scaled_dot_product_attention(query, key, value, enable_gqa=True, sinks=sinks)
    np.testing.assert_allclose(out[0, [0, 2], :, 0], 1.0, rtol=1e-15)
    np.testing.assert_allclose(out[0, [1, 3], :, 0], 0.0, atol=1e-15)


@pytest.mark.parametrize(("sinks", "error", "message"), [
    (np.ones(2), ValueError, r"sinks: expected shape \(H_q,\) = \(3,\) or \(B, H_q\) = \(2, 3\).*got shape \(2,\)"),
    (np.ones((4, 3)), ValueError, r"sinks: expected shape .*one sink per query head.*got shape \(4, 3\)"),
    (np.float64(0.5), ValueError, r"sinks: expected shape .*got shape \(\)"),
    (np.array([0.5, np.inf, 0.1]), ValueError, r"sinks: expected finite sinks, got inf at index \(1,\)"),
    (np.array([0.5, 0.1, -np.inf]), ValueError, r"sinks: expected finite sinks, got -inf at index \(2,\)"),
    (np.array([np.nan, 0.1, 0.1]), ValueError, r"sinks: expected finite sinks, got nan at index \(0,\)"),
    (np.ones(3, dtype=np.int64), TypeError, "sinks: expected a floating dtype .* got int64"),
])
def test_bad_sinks_are_refused_naming_them(sinks, error, message: str) -> None:
    query = np.zeros((2, 3, 2, 4))
    with pytest.raises(error, match=message):
        scaled_dot_product_attention(query, query, query, sinks=sinks)


def test_sinks_need_the_head_axis() -> None:
    with pytest.raises(ValueError, match=r"sinks: needs a head axis, query \(\.\.\., H_q, L, E\)"):
        scaled_dot_product_attention(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros((4, 3)), sinks=np.zeros(1))
