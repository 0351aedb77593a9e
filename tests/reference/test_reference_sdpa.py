"""kqv.reference.sdpa: scaled dot-product attention against sympy, the mpmath oracle and torch."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import attention_cases, keep_mask_of, sdpa_bound

from kqv.reference import attention_weights, scaled_dot_product_attention
from kqv.reference.oracle import oracle_attention_weights, oracle_sdpa

SETTINGS = settings(max_examples=100, deadline=None)


# --------------------------------------------------------------------------- sympy spec


def _sympy_attention(query, key, value, keep=None, scale=None):
    """``softmax(Q K^T * scale) V`` with sympy, exactly, masked keys left out of each row."""
    Q, K, V = sympy.Matrix(query), sympy.Matrix(key), sympy.Matrix(value)
    s = 1 / sympy.sqrt(Q.shape[1]) if scale is None else sympy.Rational(scale)
    X = Q * K.T * s
    rows = []
    for i in range(X.shape[0]):
        kept = [j for j in range(X.shape[1]) if keep is None or keep[i][j]]
        exps = {j: sympy.exp(X[i, j]) for j in kept}
        total = sum(exps.values())
        rows.append([exps[j] / total if j in exps else sympy.Integer(0) for j in range(X.shape[1])])
    P = sympy.Matrix(rows)
    return P, P * V


def _rationals(rng, shape, denominator=4, top=12):
    return [[sympy.Rational(int(n), denominator) for n in row] for row in rng.integers(-top, top + 1, size=shape)]


@pytest.mark.parametrize("seed", range(4))
def test_matches_sympy_formula_at_30_digits(seed: int) -> None:
    rng = np.random.default_rng(seed)
    L, S, e, ev = (int(n) for n in rng.integers(1, 5, size=4))
    q, k, v = _rationals(rng, (L, e)), _rationals(rng, (S, e)), _rationals(rng, (S, ev))
    keep = rng.random((L, S)) < 0.7
    keep[:, 0] = True
    P, O = _sympy_attention(q, k, v, keep.tolist())
    expected_p = np.array(sympy.N(P, 30).tolist(), dtype=np.float64)
    expected_o = np.array(sympy.N(O, 30).tolist(), dtype=np.float64)
    to_array = lambda m: np.array(m, dtype=np.float64)  # noqa: E731 - the quarter-integers are exact in binary
    got_p = attention_weights(to_array(q), to_array(k), attn_mask=keep)
    got_o = scaled_dot_product_attention(to_array(q), to_array(k), to_array(v), attn_mask=keep)
    np.testing.assert_allclose(got_p, expected_p, rtol=1e-14, atol=1e-300)
    mass = np.abs(expected_p) @ np.abs(to_array(v))
    assert np.all(np.abs(got_o - expected_o) <= 1e-14 * mass), (got_o, expected_o)


def test_matches_sympy_with_explicit_scale() -> None:
    q, k, v = [[1, 2], [0, -1]], [[3, 1], [-2, 2], [1, 1]], [[1], [2], [-5]]
    P, O = _sympy_attention(q, k, v, scale="3/8")
    got = scaled_dot_product_attention(np.array(q, float), np.array(k, float), np.array(v, float), scale=0.375)
    np.testing.assert_allclose(got, np.array(sympy.N(O, 30).tolist(), dtype=float), rtol=1e-14)


# --------------------------------------------------------------------------- mpmath oracle


@SETTINGS
@given(attention_cases(keep_one=False))
def test_within_forward_error_bound_of_oracle(case) -> None:
    got = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs())
    exact = oracle_sdpa(case.query, case.key, case.value, **case.kwargs())
    weights = oracle_attention_weights(case.broadcast_query(), case.key, **case.kwargs())
    bound = sdpa_bound(case.query, case.key, case.value, weights, scale=case.scale, additive=case.additive())
    assert got.shape == exact.shape
    assert got.dtype == np.float64
    assert np.all(np.abs(got - exact) <= bound), np.max(np.abs(got - exact) / bound)


@SETTINGS
@given(attention_cases(keep_one=False, large_logits=False))
def test_weights_within_bound_of_oracle_and_rows_sum_to_one(case) -> None:
    """Clauses softmax.rows-sum-to-one and mask.zero-weight on the weights themselves."""
    got = attention_weights(case.broadcast_query(), case.key, **case.kwargs())
    exact = oracle_attention_weights(case.broadcast_query(), case.key, **case.kwargs())
    identity = np.eye(case.key.shape[-2])  # P @ I = P: the bound of the weights themselves
    bound = sdpa_bound(case.query, case.key, identity, exact, scale=case.scale, additive=case.additive())
    assert np.all(np.abs(got - exact) <= bound)
    keep = np.broadcast_to(keep_mask_of(case), got.shape)
    assert np.all(got[~keep] == 0.0)
    sums = got.sum(axis=-1)
    full = keep.any(axis=-1)
    np.testing.assert_allclose(sums[full], 1.0, rtol=0, atol=8 * case.key.shape[-2] * 2.0**-53)
    assert np.all(sums[~full] == 0.0)


# --------------------------------------------------------------------------- torch


def _torch(case, **overrides):
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (case.query, case.key, case.value)]
    mask = overrides.pop("attn_mask", case.attn_mask)
    kwargs = dict(attn_mask=None if mask is None else torch.from_numpy(np.ascontiguousarray(mask)),
                  is_causal=case.is_causal, scale=case.scale)
    kwargs.update(overrides)
    return torch.nn.functional.scaled_dot_product_attention(*tensors, **kwargs).numpy()


@SETTINGS
@given(attention_cases(causal=("none", "top-left"), torch_compatible=True))
def test_agrees_with_torch_float64(case) -> None:
    if case.is_causal and case.attn_mask is not None:
        case.attn_mask = None  # torch refuses attn_mask together with is_causal
    got = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs())
    expected = _torch(case)
    weights = attention_weights(case.broadcast_query(), case.key, **case.kwargs())
    bound = 2 * sdpa_bound(case.query, case.key, case.value, weights, scale=case.scale, additive=case.additive())
    assert got.shape == expected.shape
    assert np.all(np.abs(got - expected) <= bound), np.max(np.abs(got - expected) / bound)


@SETTINGS
@given(attention_cases(causal=("bottom-right",), mask_kinds=("none",), torch_compatible=True))
def test_bottom_right_agrees_with_torch_given_the_tril_mask(case) -> None:
    L, S = case.query.shape[-2], case.key.shape[-2]
    tril = np.tril(np.ones((L, S), dtype=bool), k=S - L)
    got = scaled_dot_product_attention(case.query, case.key, case.value, is_causal=True, scale=case.scale,
                                       causal_alignment="bottom-right")
    expected = _torch(case, attn_mask=tril, is_causal=False)
    weights = attention_weights(case.broadcast_query(), case.key, attn_mask=tril, scale=case.scale)
    bound = 2 * sdpa_bound(case.query, case.key, case.value, weights, scale=case.scale)
    assert np.all(np.abs(got - expected) <= bound)


def test_torch_comparison_can_fail() -> None:
    """The torch tolerance is tight: a scale off by a relative 1e-9 is caught."""
    rng = np.random.default_rng(3)
    query, key, value = rng.standard_normal((4, 8)), rng.standard_normal((6, 8)), rng.standard_normal((6, 3))
    got = scaled_dot_product_attention(query, key, value, scale=(1 + 1e-9) / np.sqrt(8))
    expected = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (query, key, value))).numpy()
    bound = 2 * sdpa_bound(query, key, value, attention_weights(query, key))
    assert np.any(np.abs(got - expected) > bound)


# --------------------------------------------------------------------------- contract details


def test_mask_and_causal_combine() -> None:
    rng = np.random.default_rng(0)
    query, key, value = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    mask = np.array([[True, True, True], [False, True, True], [True, False, True]])
    combined = mask & np.tril(np.ones((3, 3), dtype=bool))
    got = scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=True)
    np.testing.assert_array_equal(got, scaled_dot_product_attention(query, key, value, attn_mask=combined))
    additive = np.where(mask, 0.5, -np.inf)
    got = scaled_dot_product_attention(query, key, value, attn_mask=additive, is_causal=True)
    expected = scaled_dot_product_attention(query, key, value, attn_mask=np.where(combined, 0.5, -np.inf))
    np.testing.assert_array_equal(got, expected)


def test_default_scale_is_one_over_sqrt_e() -> None:
    rng = np.random.default_rng(1)
    query, key, value = rng.standard_normal((2, 5, 9)), rng.standard_normal((2, 4, 9)), rng.standard_normal((2, 4, 3))
    np.testing.assert_array_equal(scaled_dot_product_attention(query, key, value),
                                  scaled_dot_product_attention(query, key, value, scale=1 / 3))
    assert not np.allclose(scaled_dot_product_attention(query, key, value),
                           scaled_dot_product_attention(query, key, value, scale=1.0))


@pytest.mark.parametrize("shapes, out", [
    (((3, 4), (5, 4), (5, 2)), (3, 2)),
    (((2, 3, 4), (5, 4), (5, 2)), (2, 3, 2)),
    (((2, 1, 3, 4), (1, 6, 5, 4), (6, 5, 2)), (2, 6, 3, 2)),
    (((0, 4), (5, 4), (5, 2)), (0, 2)),
])
def test_output_shape_broadcasts_batch_dims(shapes, out) -> None:
    arrays = [np.ones(shape) for shape in shapes]
    assert scaled_dot_product_attention(*arrays).shape == out


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
def test_floating_dtypes_compute_in_float64(dtype) -> None:
    np_dtype = np.dtype(getattr(pytest.importorskip("ml_dtypes"), "bfloat16")) if dtype == "bfloat16" else dtype
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(shape).astype(np_dtype) for shape in ((3, 4), (5, 4), (5, 2))]
    got = scaled_dot_product_attention(*arrays, attn_mask=np.ones((3, 5), dtype=np_dtype))
    assert got.dtype == np.float64
    upcast = [a.astype(np.float64) for a in arrays]
    np.testing.assert_array_equal(got, scaled_dot_product_attention(*upcast, attn_mask=np.ones((3, 5))))


@given(st.sampled_from([1e3, 1e6, 1e100, 1e300]))
@settings(max_examples=8, deadline=None)
def test_huge_finite_logits_give_finite_output(magnitude) -> None:
    query = np.array([[1.0], [-1.0], [0.5]])
    key = np.array([[magnitude], [magnitude / 2], [-magnitude]])
    value = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    got = scaled_dot_product_attention(query, key, value, scale=1.0)
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, value[[0, 2, 0]])  # one key dominates each row completely
    exact = oracle_sdpa(query, key, value, scale=1.0)
    np.testing.assert_array_equal(got, exact)


def test_tied_huge_logits_share_weight() -> None:
    query = np.array([[1e6, -1e6]])
    key = np.array([[1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
    value = np.array([[2.0], [4.0], [100.0]])
    np.testing.assert_array_equal(scaled_dot_product_attention(query, key, value, scale=1.0), [[3.0]])
    query = np.array([[-1e300]])
    key = np.array([[1.0], [1.0]])
    np.testing.assert_array_equal(scaled_dot_product_attention(query, key, value[:2], scale=1.0), [[3.0]])


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(attention_cases(large_logits=False, torch_compatible=True))
def test_output_in_convex_hull_of_kept_values(case) -> None:
    """Each output is a convex combination of the kept values (clause output.convex-hull), up to rounding."""
    got = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs())
    keep = np.broadcast_to(keep_mask_of(case)[..., None], got.shape[:-1] + case.value.shape[-2:])  # (..., L, S, Ev)
    value = np.broadcast_to(np.expand_dims(case.value, -3), keep.shape)  # (..., L, S, Ev)
    low = np.min(np.where(keep, value, np.inf), axis=-2)
    high = np.max(np.where(keep, value, -np.inf), axis=-2)
    slack = 16 * (case.key.shape[-2] + 2) * 2.0**-53 * np.max(np.abs(value), axis=-2)
    assert np.all(got >= low - slack) and np.all(got <= high + slack)


@settings(max_examples=60, deadline=None)
@given(attention_cases(torch_compatible=True), st.randoms(use_true_random=False))
def test_permuting_keys_and_values_together_changes_nothing(case, random) -> None:
    """Attention is a set function of the (key, value) pairs (clause attention.permutation.keys)."""
    if case.is_causal:
        case.attn_mask, case.is_causal = keep_mask_of(case), False
    S = case.key.shape[-2]
    order = list(range(S))
    random.shuffle(order)
    mask = None if case.attn_mask is None else case.attn_mask[..., order]
    got = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs())
    permuted = scaled_dot_product_attention(case.query, case.key[..., order, :], case.value[..., order, :],
                                            attn_mask=mask, scale=case.scale)
    weights = attention_weights(case.broadcast_query(), case.key, **case.kwargs())
    bound = 2 * sdpa_bound(case.query, case.key, case.value, weights, scale=case.scale, additive=case.additive())
    assert np.all(np.abs(got - permuted) <= bound)


def test_batch_elements_are_independent_and_inputs_unmodified() -> None:
    """Clauses attention.batch-independence and impl.inputs-unmodified."""
    rng = np.random.default_rng(9)
    query, key, value = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 6, 5)), rng.standard_normal((3, 6, 2))
    mask = rng.random((3, 4, 6)) < 0.6
    copies = [a.copy() for a in (query, key, value, mask)]
    batched = scaled_dot_product_attention(query, key, value, attn_mask=mask, masked_rows="uniform")
    for b in range(3):
        single = scaled_dot_product_attention(query[b], key[b], value[b], attn_mask=mask[b], masked_rows="uniform")
        np.testing.assert_allclose(single, batched[b], rtol=1e-15, atol=1e-16)
    for original, copy in zip((query, key, value, mask), copies):
        np.testing.assert_array_equal(original, copy)
