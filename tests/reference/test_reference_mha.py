"""kqv.reference.mha: multi-head attention against torch.nn.MultiheadAttention, the oracle and a plain loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference_helpers import mha_bound

from kqv.reference import multi_head_attention, scaled_dot_product_attention
from kqv.reference.oracle import oracle_mha


@st.composite
def mha_cases(draw, max_batch=2, max_len=4):
    heads = draw(st.integers(1, 3))
    d_k = draw(st.integers(1, 3))
    d_model = heads * d_k
    B, L, S = draw(st.integers(1, max_batch)), draw(st.integers(1, max_len)), draw(st.integers(1, max_len))
    floats = st.floats(-2, 2, allow_nan=False, width=64)
    array = lambda shape: draw(hnp.arrays(np.float64, shape, elements=floats, fill=st.nothing()))  # noqa: E731
    x_q, x_kv = array((B, L, d_model)), array((B, S, d_model))
    in_proj_weight, in_proj_bias = array((3 * d_model, d_model)), array((3 * d_model,))
    out_weight, out_bias = array((d_model, d_model)), array((d_model,))
    mask = None
    if draw(st.booleans()):
        mask = draw(hnp.arrays(np.bool_, (L, S)))
        mask[:, 0] = True  # every row keeps a key (torch gives NaN otherwise)
    return dict(heads=heads, x_q=x_q, x_kv=x_kv, in_proj_weight=in_proj_weight, in_proj_bias=in_proj_bias,
                out_weight=out_weight, out_bias=out_bias, mask=mask)


def _seed_notation(case):
    """torch's parameters in the seed notation: y = x W^T there, y = x w here."""
    d = case["x_q"].shape[-1]
    w, b = case["in_proj_weight"], case["in_proj_bias"]
    return dict(w_q=w[:d].T, w_k=w[d:2 * d].T, w_v=w[2 * d:].T, w_o=case["out_weight"].T,
                b_q=b[:d], b_k=b[d:2 * d], b_v=b[2 * d:], b_o=case["out_bias"])


def _torch_mha(case):
    d = case["x_q"].shape[-1]
    module = torch.nn.MultiheadAttention(d, case["heads"], bias=True, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.from_numpy(case["in_proj_weight"]))
        module.in_proj_bias.copy_(torch.from_numpy(case["in_proj_bias"]))
        module.out_proj.weight.copy_(torch.from_numpy(case["out_weight"]))
        module.out_proj.bias.copy_(torch.from_numpy(case["out_bias"]))
        x_q, x_kv = torch.from_numpy(case["x_q"]), torch.from_numpy(case["x_kv"])
        mask = None if case["mask"] is None else torch.from_numpy(~case["mask"])  # torch: True = NOT allowed
        out, _ = module(x_q, x_kv, x_kv, attn_mask=mask, need_weights=False)
    return out.numpy()


@given(mha_cases())
@settings(max_examples=100, deadline=None)
def test_agrees_with_torch_multihead_attention(case) -> None:
    weights = _seed_notation(case)
    got = multi_head_attention(case["x_q"], case["x_kv"], **weights, num_heads=case["heads"], attn_mask=case["mask"])
    expected = _torch_mha(case)
    bound = 2 * mha_bound(case["x_q"], case["x_kv"], **weights, num_heads=case["heads"], attn_mask=case["mask"])
    assert got.shape == expected.shape
    assert np.all(np.abs(got - expected) <= bound), np.max(np.abs(got - expected) / bound)


@given(mha_cases(max_batch=1, max_len=3), st.booleans())
@settings(max_examples=30, deadline=None)
def test_within_bound_of_oracle(case, is_causal) -> None:
    weights = _seed_notation(case)
    kwargs = dict(num_heads=case["heads"], attn_mask=case["mask"], is_causal=is_causal)
    got = multi_head_attention(case["x_q"], case["x_kv"], **weights, **kwargs)
    exact = oracle_mha(case["x_q"], case["x_kv"], **weights, **kwargs)
    bound = mha_bound(case["x_q"], case["x_kv"], **weights, **kwargs)
    assert np.all(np.abs(got - exact) <= bound), np.max(np.abs(got - exact) / bound)


def _random_weights(rng, d_model, heads, d_k, d_v):
    return dict(w_q=rng.standard_normal((d_model, heads * d_k)), w_k=rng.standard_normal((d_model, heads * d_k)),
                w_v=rng.standard_normal((d_model, heads * d_v)), w_o=rng.standard_normal((heads * d_v, d_model)),
                b_q=rng.standard_normal(heads * d_k), b_k=rng.standard_normal(heads * d_k),
                b_v=rng.standard_normal(heads * d_v), b_o=rng.standard_normal(d_model))


def _loop_mha(x_q, x_kv, w, heads, scale_of):
    """Multi-head attention written as the paper's loop over heads, with the scale chosen by ``scale_of(d_k)``."""
    d_k, d_v = w["w_q"].shape[1] // heads, w["w_v"].shape[1] // heads
    outputs = []
    for i in range(heads):
        q = x_q @ w["w_q"][:, i * d_k:(i + 1) * d_k] + w["b_q"][i * d_k:(i + 1) * d_k]
        k = x_kv @ w["w_k"][:, i * d_k:(i + 1) * d_k] + w["b_k"][i * d_k:(i + 1) * d_k]
        v = x_kv @ w["w_v"][:, i * d_v:(i + 1) * d_v] + w["b_v"][i * d_v:(i + 1) * d_v]
        scores = q @ np.swapaxes(k, -1, -2) * scale_of(d_k)
        p = np.exp(scores - scores.max(axis=-1, keepdims=True))
        outputs.append(p / p.sum(axis=-1, keepdims=True) @ v)
    return np.concatenate(outputs, axis=-1) @ w["w_o"] + w["b_o"]


@pytest.mark.parametrize("heads, d_k, d_v", [(1, 8, 8), (2, 4, 4), (4, 2, 3), (8, 1, 2)])
def test_scale_is_per_head_d_k_not_d_model(heads, d_k, d_v) -> None:
    """Clause mha.head: each head scales by 1/sqrt(d_k), d_k = width / num_heads; 1/sqrt(d_model) is wrong."""
    rng = np.random.default_rng(heads)
    d_model = 8
    x_q, x_kv = 2 * rng.standard_normal((2, 3, d_model)), 2 * rng.standard_normal((2, 5, d_model))
    w = _random_weights(rng, d_model, heads, d_k, d_v)
    got = multi_head_attention(x_q, x_kv, **w, num_heads=heads)
    right = _loop_mha(x_q, x_kv, w, heads, lambda d: 1 / np.sqrt(d))
    wrong = _loop_mha(x_q, x_kv, w, heads, lambda d: 1 / np.sqrt(d_model))
    np.testing.assert_allclose(got, right, rtol=1e-12, atol=1e-12)
    if d_k != d_model:
        assert np.max(np.abs(got - wrong)) > 1e-3


def test_heads_concatenate_in_order_and_use_their_own_columns() -> None:
    """Clauses mha.split and mha.concat: swapping two heads' columns of w_o changes the output."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 4, 6))
    w = _random_weights(rng, 6, 3, 2, 2)
    got = multi_head_attention(x, x, **w, num_heads=3)
    swapped = dict(w, w_o=w["w_o"][[2, 3, 0, 1, 4, 5]])
    assert not np.allclose(got, multi_head_attention(x, x, **swapped, num_heads=3))
    # and each head equals sdpa on its own slice of the projections
    q, k, v = x @ w["w_q"] + w["b_q"], x @ w["w_k"] + w["b_k"], x @ w["w_v"] + w["b_v"]
    heads = [scaled_dot_product_attention(q[..., 2 * i:2 * i + 2], k[..., 2 * i:2 * i + 2], v[..., 2 * i:2 * i + 2])
             for i in range(3)]
    expected = np.concatenate(heads, axis=-1) @ w["w_o"] + w["b_o"]
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


def test_masks_causal_unbatched_and_no_bias() -> None:
    rng = np.random.default_rng(6)
    x_q, x_kv = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    w = _random_weights(rng, 4, 2, 2, 2)
    no_bias = {name: w[name] for name in ("w_q", "w_k", "w_v", "w_o")}
    zero_bias = dict(w, b_q=np.zeros(4), b_k=np.zeros(4), b_v=np.zeros(4), b_o=np.zeros(4))
    np.testing.assert_array_equal(multi_head_attention(x_q, x_kv, **no_bias, num_heads=2),
                                  multi_head_attention(x_q, x_kv, **zero_bias, num_heads=2))
    mask = rng.random((2, 3, 5)) < 0.6
    mask[..., 0] = True
    batched = multi_head_attention(x_q, x_kv, **w, num_heads=2, attn_mask=mask)
    for b in range(2):
        single = multi_head_attention(x_q[b], x_kv[b], **w, num_heads=2, attn_mask=mask[b])
        np.testing.assert_allclose(single, batched[b], rtol=1e-14, atol=1e-14)
    causal = multi_head_attention(x_q, x_kv, **w, num_heads=2, is_causal=True)
    tril = np.tril(np.ones((3, 5), dtype=bool))
    np.testing.assert_array_equal(causal, multi_head_attention(x_q, x_kv, **w, num_heads=2, attn_mask=tril))
