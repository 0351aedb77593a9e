"""The variants of the reference's sdpa (sliding windows, soft caps, ALiBi): the forms agree, the index rules and formulas
hold as the spec writes them, and bad values are refused with a message naming the argument.

The forms: dense, blocked (blocks small enough to cut every case) and the mpmath oracle agree within the float64
bound of the tolerance model (twice it between two float64 forms, as in test_reference_blocked.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference_helpers import Case, attention_cases

from kqv.conformance.compare import mismatch
from kqv.conformance.kinds.sdpa.bound import sdpa_expectation
from kqv.conformance.kinds.sdpa.case import SdpaInputs
from kqv.conformance.tolerance import Precision
from kqv.reference import alibi_slopes, attention_weights, scaled_dot_product_attention
from kqv.reference.oracle import oracle_sdpa
from kqv.spec.alibi import slopes as exact_slopes

TINY = np.finfo(np.float64).tiny
sides = st.one_of(st.none(), st.integers(0, 6))
caps = st.one_of(st.none(), st.floats(0.05, 50.0))


def _bound(case: Case, **variants) -> np.ndarray:
    inputs = SdpaInputs(case.query, case.key, case.value, case.attn_mask, case.is_causal, case.scale,
                        variants=tuple((name, value) for name, value in variants.items() if value is not None))
    return sdpa_expectation(inputs, Precision.of("float64"), case.causal_alignment).bound


def _keep(L: int, S: int, offset: int, window) -> np.ndarray:
    """The window rule written out: i + o - left <= j <= i + o + right."""
    i, j = np.arange(L)[:, None], np.arange(S)[None, :]
    left, right = window
    return ((left is None) | (j >= i + offset - (left or 0))) & ((right is None) | (j <= i + offset + (right or 0)))


@settings(max_examples=150, deadline=None)
@given(case=attention_cases(keep_one=False), window=st.one_of(st.none(), st.tuples(sides, sides)), softcap=caps,
       block=st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_dense_blocked_and_oracle_agree_with_windows_and_caps(case: Case, window, softcap, block) -> None:
    kwargs = dict(case.kwargs(), window=window, softcap=softcap)
    dense = scaled_dot_product_attention(case.query, case.key, case.value, **kwargs, method="dense")
    blocked = scaled_dot_product_attention(case.query, case.key, case.value, **kwargs, method="blocked",
                                           block_size=block)
    exact = oracle_sdpa(case.query, case.key, case.value, **kwargs, dps=40)
    bound = _bound(case, window=window, softcap=softcap) + TINY
    assert mismatch(blocked, dense, 2 * bound) is None
    assert mismatch(dense, exact, bound) is None


@pytest.mark.parametrize("L, S", [(3, 5), (5, 3), (4, 4)])
@pytest.mark.parametrize("alignment", ["top-left", "bottom-right"])
@pytest.mark.parametrize("window", [(1, 0), (0, 2), (None, 1), (2, None), (0, 0)])
def test_the_window_keeps_the_keys_of_the_index_rule(L: int, S: int, alignment: str, window) -> None:
    rng = np.random.default_rng(L * S)
    query, key = rng.standard_normal((L, 3)), rng.standard_normal((S, 3))
    offset = 0 if alignment == "top-left" else S - L
    weights = attention_weights(query, key, window=window, causal_alignment=alignment)
    keep = _keep(L, S, offset, window)
    assert np.array_equal(weights > 0, keep & keep.any(axis=-1, keepdims=True))  # exactly 0 off the window


@pytest.mark.parametrize("alignment", ["top-left", "bottom-right"])
def test_the_window_none_zero_is_the_causal_rule_and_a_wide_one_is_none(alignment: str) -> None:
    rng = np.random.default_rng(3)
    query, key, value = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 6, 2))
    # The dense form keeps the same keys in the same order: bit for bit. The blocked form skips the key blocks the
    # causal rule hides, which a window does not, so its sums are cut differently: to float64 rounding.
    for method, rtol in (("dense", 0.0), ("blocked", 1e-14)):
        causal = scaled_dot_product_attention(query, key, value, is_causal=True, causal_alignment=alignment,
                                              method=method, **({"block_size": (2, 2)} if rtol else {}))
        windowed = scaled_dot_product_attention(query, key, value, window=(None, 0), causal_alignment=alignment,
                                                method=method, **({"block_size": (2, 2)} if rtol else {}))
        np.testing.assert_allclose(windowed, causal, rtol=rtol, atol=0)
        plain = scaled_dot_product_attention(query, key, value, method=method)
        np.testing.assert_allclose(scaled_dot_product_attention(query, key, value, window=(5, 5), method=method,
                                                                causal_alignment=alignment), plain, rtol=rtol, atol=0)


def test_the_cap_is_c_tanh_of_the_scaled_score_before_the_mask() -> None:
    rng = np.random.default_rng(5)
    query, key, value = rng.standard_normal((3, 4)) * 20, rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    mask = rng.random((3, 5)) < 0.7
    mask[:, 0] = True
    scale, cap = 0.3, 1.5
    weights = attention_weights(query, key, mask, scale=scale, softcap=cap)
    scores = np.where(mask, cap * np.tanh(scale * (query @ key.T) / cap), -np.inf)  # capped, then masked
    expected = np.exp(scores - scores.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(weights, expected / expected.sum(axis=-1, keepdims=True), rtol=1e-13, atol=0)
    assert np.all(weights[~mask] == 0)  # softcap.order: a masked key keeps weight 0
    kept = np.where(mask, weights, np.nan)
    assert np.all(np.nanmin(kept, axis=-1) >= np.nanmax(kept, axis=-1) * np.exp(-2 * cap) * (1 - 1e-12))


def test_a_large_cap_is_the_identity_to_first_order() -> None:
    rng = np.random.default_rng(6)
    query, key, value = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    plain = scaled_dot_product_attention(query, key, value)
    for cap, tolerance in ((1e3, 1e-5), (1e5, 1e-9)):  # the cap changes the output by O((y / c)^2)
        np.testing.assert_allclose(scaled_dot_product_attention(query, key, value, softcap=cap), plain,
                                   rtol=0, atol=tolerance)


@pytest.mark.parametrize(("window", "message"), [
    ((-1, 0), "window: left must be an integer >= 0 or None"),
    ((0, -2), "window: right must be an integer >= 0 or None"),
    ((1.5, 0), "window: left must be an integer"),
    ((True, 0), "window: left must be an integer"),
    ((1, 2, 3), r"window: expected None or a pair \(left, right\)"),
    (3, r"window: expected None or a pair \(left, right\)"),
])
def test_a_bad_window_is_refused_naming_it(window, message: str) -> None:
    arrays = [np.ones((2, 3))] * 3
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(*arrays, window=window)
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(*arrays, window=window, method="blocked")


@pytest.mark.parametrize("cap", [0, -1.0, float("inf"), float("nan"), True, "5"])
def test_a_bad_cap_is_refused_naming_it(cap) -> None:
    with pytest.raises(ValueError, match="softcap: expected a finite real number > 0"):
        scaled_dot_product_attention(*[np.ones((2, 3))] * 3, softcap=cap)


@st.composite
def _slopes(draw, case: Case):
    """None, or slopes (H_q,) or (B, H_q) for the case's batch, of either sign and from tiny to dominating."""
    batch = np.broadcast_shapes(case.query.shape[:-2], case.key.shape[:-2], case.value.shape[:-2])
    if not batch or not draw(st.booleans()):
        return None
    shape = batch[-draw(st.integers(1, min(2, len(batch)))):]
    magnitude = draw(st.sampled_from([1e-4, 0.1, 1.0, 30.0]))
    return draw(hnp.arrays(np.float64, shape, elements=st.floats(-magnitude, magnitude, allow_nan=False)))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), case=attention_cases(keep_one=False), window=st.one_of(st.none(), st.tuples(sides, sides)),
       softcap=caps, block=st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_dense_blocked_and_oracle_agree_with_alibi(data, case: Case, window, softcap, block) -> None:
    slopes = data.draw(_slopes(case))
    kwargs = dict(case.kwargs(), window=window, softcap=softcap, alibi_slopes=slopes)
    dense = scaled_dot_product_attention(case.query, case.key, case.value, **kwargs, method="dense")
    blocked = scaled_dot_product_attention(case.query, case.key, case.value, **kwargs, method="blocked",
                                           block_size=block)
    exact = oracle_sdpa(case.query, case.key, case.value, **kwargs, dps=40)
    bound = _bound(case, window=window, softcap=softcap, alibi=None if slopes is None else slopes.tolist()) + TINY
    assert mismatch(blocked, dense, 2 * bound) is None
    assert mismatch(dense, exact, bound) is None


def _alibi_bias(slopes: np.ndarray, L: int, S: int, offset: int) -> np.ndarray:
    """The bias written out: -m_h |i + o - j|, (..., H_q, L, S)."""
    i, j = np.arange(L)[:, None], np.arange(S)[None, :]
    return -slopes[..., None, None] * np.abs(i + offset - j)


@pytest.mark.parametrize("L, S", [(3, 5), (5, 3), (4, 4)])
@pytest.mark.parametrize("alignment", ["top-left", "bottom-right"])
@pytest.mark.parametrize("per_batch", [False, True])
def test_alibi_is_the_float_mask_of_its_bias(L: int, S: int, alignment: str, per_batch: bool) -> None:
    rng = np.random.default_rng(L * S)
    query, key, value = rng.standard_normal((2, 3, L, 4)), rng.standard_normal((2, 3, S, 4)), \
        rng.standard_normal((2, 3, S, 2))
    slopes = rng.standard_normal((2, 3) if per_batch else (3,))
    mask = rng.standard_normal((L, S))
    offset = 0 if alignment == "top-left" else S - L
    biased = scaled_dot_product_attention(query, key, value, mask, alibi_slopes=slopes, causal_alignment=alignment)
    masked = scaled_dot_product_attention(query, key, value, mask + _alibi_bias(slopes, L, S, offset),
                                          causal_alignment=alignment)
    np.testing.assert_allclose(biased, masked, rtol=1e-13, atol=1e-15)  # alibi.float-mask


@pytest.mark.parametrize("alignment", ["top-left", "bottom-right"])
def test_the_per_row_form_agrees_under_causal_masking_only(alignment: str) -> None:
    rng = np.random.default_rng(7)
    query, key, value = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 6, 2))
    slopes = np.array([0.5, 0.25])
    per_row = slopes[:, None, None] * np.arange(6.0)  # (H_q, 1, S): +m_h j
    for is_causal, agrees in ((True, True), (False, False)):
        biased = scaled_dot_product_attention(query, key, value, is_causal=is_causal, causal_alignment=alignment,
                                              alibi_slopes=slopes)
        row_form = scaled_dot_product_attention(query, key, value, np.broadcast_to(per_row, (2, 4, 6)),
                                                is_causal=is_causal, causal_alignment=alignment)
        assert np.allclose(biased, row_form, rtol=1e-12, atol=1e-14) == agrees  # alibi.per-row-form


def test_large_positive_slopes_pick_the_nearest_key_and_heads_keep_their_slopes() -> None:
    rng = np.random.default_rng(8)
    query, key, value = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 5, 2))
    slopes = np.array([60.0, 0.0, -60.0])  # nearest key, no bias, farthest key
    out = scaled_dot_product_attention(query, key, value, alibi_slopes=slopes, causal_alignment="bottom-right")
    np.testing.assert_allclose(out[0], value[0, 1:], rtol=0, atol=1e-12)  # query i's own position is key i + 1
    np.testing.assert_allclose(out[1], scaled_dot_product_attention(query[1], key[1], value[1]), rtol=1e-14)
    order = [2, 0, 1]  # alibi.head-order: permuting heads and slopes together permutes the output
    moved = scaled_dot_product_attention(query[order], key[order], value[order], alibi_slopes=slopes[order],
                                         causal_alignment="bottom-right")
    np.testing.assert_array_equal(moved, out[order])


@pytest.mark.parametrize("num_heads", [1, 2, 3, 8, 12, 16, 24])
def test_the_slopes_helper_follows_the_paper(num_heads: int) -> None:
    slopes = alibi_slopes(num_heads)
    assert slopes.shape == (num_heads,) and slopes.dtype == np.float64
    np.testing.assert_allclose(slopes, [float(m) for m in exact_slopes(num_heads)], rtol=1e-15, atol=0)


def test_the_slopes_of_8_and_12_heads() -> None:
    np.testing.assert_array_equal(alibi_slopes(8), 2.0 ** -np.arange(1, 9))  # 2^(-8 (h + 1) / 8), exactly
    np.testing.assert_allclose(alibi_slopes(12), np.concatenate([2.0 ** -np.arange(1, 9),
                                                                 2.0 ** -(np.arange(4) + 0.5)]), rtol=1e-15)


@pytest.mark.parametrize("num_heads", [0, -1, 2.0, True])
def test_a_bad_head_count_is_refused_naming_it(num_heads) -> None:
    with pytest.raises(ValueError, match="num_heads: expected an integer >= 1"):
        alibi_slopes(num_heads)


@pytest.mark.parametrize(("slopes", "error", "message"), [
    (np.ones(3), ValueError, r"alibi_slopes: expected shape \(H_q,\) = \(4,\) or \(B, H_q\) = \(2, 4\).*got shape \(3,\)"),
    (np.ones((3, 4)), ValueError, r"alibi_slopes: expected shape .*got shape \(3, 4\)"),
    (np.ones((1, 2, 4)), ValueError, r"alibi_slopes: expected shape .*got shape \(1, 2, 4\)"),
    (np.float64(0.5), ValueError, r"alibi_slopes: expected shape .*got shape \(\)"),
    (np.array([0.5, np.inf, 0.1, 0.1]), ValueError, r"alibi_slopes: expected finite slopes, got inf at index \(1,\)"),
    (np.array([0.5, 0.1, 0.1, np.nan]), ValueError, r"alibi_slopes: expected finite slopes, got nan at index \(3,\)"),
    (np.ones(4, dtype=np.int64), TypeError, "alibi_slopes: expected a floating dtype .* got int64"),
])
def test_bad_slopes_are_refused_naming_them(slopes, error, message: str) -> None:
    arrays = [np.ones((2, 4, 3, 2))] * 3
    for method in ("dense", "blocked"):
        with pytest.raises(error, match=message):
            scaled_dot_product_attention(*arrays, alibi_slopes=slopes, method=method)


def test_slopes_without_a_head_axis_are_refused() -> None:
    with pytest.raises(ValueError, match=r"alibi_slopes: needs a head axis, query \(\.\.\., H_q, L, E\)"):
        scaled_dot_product_attention(*[np.ones((3, 2))] * 3, alibi_slopes=np.ones(1))
