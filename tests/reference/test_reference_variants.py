"""The variants of the reference's sdpa (sliding windows, soft caps): the forms agree, the index rules and formulas
hold as the spec writes them, and bad values are refused with a message naming the argument.

The forms: dense, blocked (blocks small enough to cut every case) and the mpmath oracle agree within the float64
bound of the tolerance model (twice it between two float64 forms, as in test_reference_blocked.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import Case, attention_cases

from kqv.conformance.compare import mismatch
from kqv.conformance.kinds.sdpa.bound import sdpa_expectation
from kqv.conformance.kinds.sdpa.case import SdpaInputs
from kqv.conformance.tolerance import Precision
from kqv.reference import attention_weights, scaled_dot_product_attention
from kqv.reference.oracle import oracle_sdpa

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
