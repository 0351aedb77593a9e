"""The lse of the reference's sdpa (``return_lse=True``): the dense form, the blocked form and the mpmath oracle agree
within the bound of the tolerance model, the lse is the log of the softmax denominator (clause ``lse.definition``),
rebuilds the weights (``lse.weights``), is ``-inf`` on rows that keep no key (``lse.empty-row``) and combines across
blocks of keys (``lse.combine``); a non-bool ``return_lse`` is refused naming the argument.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from reference_helpers import Case, attention_cases

from kqv.conformance.kinds.sdpa.bound import lse_expectation
from kqv.conformance.kinds.sdpa.case import SdpaInputs
from kqv.conformance.tolerance import Precision
from kqv.reference import attention_weights, scaled_dot_product_attention
from kqv.reference.oracle import oracle_sdpa


def _lse_bound(case: Case) -> np.ndarray:
    inputs = SdpaInputs(case.query, case.key, case.value, case.attn_mask, case.is_causal, case.scale)
    return lse_expectation(inputs, Precision.of("float64"), "float64", case.causal_alignment)[1]


def _same(got: np.ndarray, expected: np.ndarray, bound: np.ndarray) -> None:
    """Equal -inf where one is -inf, within ``bound`` elsewhere."""
    np.testing.assert_array_equal(got == -np.inf, expected == -np.inf)
    finite = np.isfinite(expected)
    assert np.all(np.abs(got - expected)[finite] <= bound[finite]), np.max(np.abs(got - expected)[finite] - bound[finite])


@settings(max_examples=60, deadline=None)
@given(case=attention_cases(keep_one=False))
def test_dense_blocked_and_oracle_lse_agree(case: Case) -> None:
    output, lse = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs(), method="dense",
                                               return_lse=True)
    assert lse.dtype == np.float64 and lse.shape == output.shape[:-1]
    blocked_output, blocked = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs(),
                                                           method="blocked", block_size=(2, 3), return_lse=True)
    np.testing.assert_array_equal(blocked_output, scaled_dot_product_attention(
        case.query, case.key, case.value, **case.kwargs(), method="blocked", block_size=(2, 3)))
    _, exact = oracle_sdpa(case.query, case.key, case.value, **case.kwargs(), return_lse=True)
    bound = _lse_bound(case)
    with np.errstate(invalid="ignore"):
        _same(exact, lse, bound)
        _same(blocked, lse, 2 * bound)


@settings(max_examples=40, deadline=None)
@given(case=attention_cases(keep_one=True, large_logits=False))
def test_the_lse_rebuilds_the_weights(case: Case) -> None:
    _, lse = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs(), return_lse=True)
    weights = attention_weights(case.broadcast_query(), case.key, **case.kwargs())  # the value's batch dims too
    scale = 1 / np.sqrt(case.query.shape[-1]) if case.scale is None else case.scale
    x = scale * case.query @ np.swapaxes(case.key, -1, -2)  # (..., L, S)
    if case.attn_mask is not None and case.attn_mask.dtype != np.bool_:
        x = x + case.attn_mask
    shape = lse.shape + (x.shape[-1],)  # (*batch, L, S): value's batch dims too
    weights = np.broadcast_to(weights, shape)
    rebuilt = np.where(weights > 0, np.exp(x - lse[..., None]), 0.0)  # p_ij = exp(x_ij - lse_i), clause lse.weights
    np.testing.assert_allclose(rebuilt, weights, rtol=1e-12, atol=1e-300)


def test_the_lse_is_the_log_of_the_denominator_and_minus_inf_on_an_empty_row() -> None:
    query, key = np.array([[1.0], [2.0]]), np.array([[0.0], [1.0], [2.0]])  # (L, E), (S, E)
    keep = np.array([[True, True, False], [False, False, False]])  # (L, S): row 1 keeps no key
    output, lse = scaled_dot_product_attention(query, key, np.ones((3, 2)), attn_mask=keep, scale=1.0,
                                               return_lse=True, masked_rows="uniform")
    assert lse[0] == pytest.approx(np.log(np.exp(0.0) + np.exp(1.0)), rel=1e-15)
    assert lse[1] == -np.inf and np.all(output[1] == 1.0)  # the output follows masked_rows, the lse does not


def test_the_lse_of_two_blocks_combines() -> None:
    rng = np.random.default_rng(3)
    query, key, value = rng.standard_normal((4, 3)), rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    first = np.broadcast_to(np.arange(6) < 2, (4, 6))
    whole_out, whole = scaled_dot_product_attention(query, key, value, return_lse=True)
    (out_a, a), (out_b, b) = (scaled_dot_product_attention(query, key, value, attn_mask=keep, return_lse=True)
                              for keep in (first, ~first))
    np.testing.assert_allclose(whole, np.logaddexp(a, b), rtol=1e-14)
    merged = np.exp(a - whole)[:, None] * out_a + np.exp(b - whole)[:, None] * out_b  # clause lse.combine
    np.testing.assert_allclose(whole_out, merged, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("method", ["dense", "blocked"])
def test_a_return_lse_that_is_not_a_bool_is_refused(method: str) -> None:
    with pytest.raises(TypeError, match="return_lse: expected a bool, got 1"):
        scaled_dot_product_attention(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2)), return_lse=1, method=method)
    with pytest.raises(TypeError, match="return_lse"):
        oracle_sdpa(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2)), return_lse="yes")


@pytest.mark.parametrize("method", ["dense", "blocked", "oracle"])
def test_a_sink_is_a_term_of_the_lse_and_the_lse_of_a_row_without_keys(method: str) -> None:
    query = np.array([[[1.0], [2.0]], [[0.5], [-1.0]]])  # (H, L, E) = (2, 2, 1)
    key = np.array([[[0.0], [1.0], [2.0]]] * 2)  # (H, S, E)
    keep = np.array([[True, True, False], [False, False, False]])  # (L, S): row 1 keeps no key
    sinks = np.array([0.25, -3.0])  # (H,)
    if method == "oracle":
        _, lse = oracle_sdpa(query, key, np.ones((2, 3, 2)), attn_mask=keep, scale=1.0, sinks=sinks, return_lse=True)
    else:
        _, lse = scaled_dot_product_attention(query, key, np.ones((2, 3, 2)), attn_mask=keep, scale=1.0, sinks=sinks,
                                              return_lse=True, method=method)
    for h in range(2):
        kept = np.exp(query[h, 0, 0] * key[h, :2, 0])  # the two keys row 0 keeps
        assert lse[h, 0] == pytest.approx(np.log(np.exp(sinks[h]) + kept.sum()), rel=1e-14)  # lse.definition
        assert lse[h, 1] == pytest.approx(sinks[h], rel=1e-15)  # no key: the sink's term alone, not -inf
