"""The analytic backward of multi-head attention against central finite differences of the forward and against
torch autograd, at float64 on tiny cases (clauses ``mha.gradient.inputs``, ``mha.gradient.weights``)."""

from __future__ import annotations

import numpy as np
import pytest

from kqv.reference import multi_head_attention, multi_head_attention_backward

NAMES = ("x_q", "x_kv", "w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o")


def _case(seed, B=2, L=3, S=4, d_model=4, h=2, d_k=2, d_v=3, mask=None, is_causal=False, biases=True):
    rng = np.random.default_rng(seed)
    arrays = dict(x_q=rng.standard_normal((B, L, d_model)), x_kv=rng.standard_normal((B, S, d_model)),
                  w_q=rng.standard_normal((d_model, h * d_k)) / 2, w_k=rng.standard_normal((d_model, h * d_k)) / 2,
                  w_v=rng.standard_normal((d_model, h * d_v)) / 2, w_o=rng.standard_normal((h * d_v, d_model)) / 2)
    if biases:
        arrays.update(b_q=rng.standard_normal(h * d_k), b_k=rng.standard_normal(h * d_k),
                      b_v=rng.standard_normal(h * d_v), b_o=rng.standard_normal(d_model))
    options = dict(num_heads=h, attn_mask=mask, is_causal=is_causal)
    return arrays, options, rng.standard_normal((B, L, d_model))  # dY


CASES = {
    "plain": _case(0),
    "causal, no biases": _case(1, L=4, is_causal=True, biases=False),
    "bool mask, one head": _case(2, h=1, d_k=3, d_v=2, mask=np.random.default_rng(9).random((2, 3, 4)) < 0.6),
    "float mask": _case(3, mask=np.random.default_rng(8).normal(size=(1, 3, 4))),
}


def _loss(arrays, options, d_output):
    return float(np.sum(multi_head_attention(**arrays, **options) * d_output))


@pytest.mark.parametrize("name", CASES)
def test_matches_central_differences(name):
    """Each entry of each gradient is the central difference of ``sum(dY * Y)`` by that entry (step 1e-6)."""
    arrays, options, d_output = CASES[name]
    got = multi_head_attention_backward(**arrays, **options, grad_output=d_output)
    step = 1e-6
    for input_name, array in arrays.items():
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            moved = {}
            for sign in (1, -1):
                changed = array.copy()
                changed[index] += sign * step
                moved[sign] = _loss({**arrays, input_name: changed}, options, d_output)
            numeric[index] = (moved[1] - moved[-1]) / (2 * step)
        np.testing.assert_allclose(getattr(got, input_name), numeric, rtol=1e-6, atol=1e-7,
                                   err_msg=f"d{input_name}")
    for missing in set(NAMES) - set(arrays):
        assert getattr(got, missing) is None


torch = pytest.importorskip("torch")


def _torch_forward(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads, attn_mask,
                   is_causal):
    """The same computation in torch: projections, heads split, torch's sdpa, heads concatenated, projected."""
    def project(x, w, b):
        return x @ w if b is None else x @ w + b

    def split(x):
        B, n, width = x.shape
        return x.reshape(B, n, num_heads, width // num_heads).transpose(1, 2)  # (B, h, n, d)

    mask = None if attn_mask is None else torch.tensor(attn_mask)[:, None]  # (B or 1, 1, L, S)
    heads = torch.nn.functional.scaled_dot_product_attention(
        split(project(x_q, w_q, b_q)), split(project(x_kv, w_k, b_k)), split(project(x_kv, w_v, b_v)),
        attn_mask=mask, is_causal=is_causal)  # (B, h, L, d_v)
    B, _, L, d_v = heads.shape
    return project(heads.transpose(1, 2).reshape(B, L, num_heads * d_v), w_o, b_o)  # (B, L, h*d_v) -> (B, L, d)


@pytest.mark.parametrize("name", CASES)
def test_matches_torch_autograd(name):
    """The gradients of the same computation written in torch, by autograd at float64."""
    arrays, options, d_output = CASES[name]
    got = multi_head_attention_backward(**arrays, **options, grad_output=d_output)
    tensors = {key: torch.tensor(a, requires_grad=True) for key, a in arrays.items()}
    grads = torch.autograd.grad(_torch_forward(**tensors, **options), list(tensors.values()), torch.tensor(d_output))
    for key, grad in zip(tensors, grads):
        np.testing.assert_allclose(getattr(got, key), grad.numpy(), rtol=1e-12, atol=1e-13, err_msg=f"d{key}")


def test_self_attention_gives_each_argument_its_partial():
    """With ``x_kv`` the very array ``x_q``, ``dX_q`` is still the query path's and ``dX_kv`` the key and value
    paths': their sum is the gradient of the shared input."""
    arrays, options, d_output = _case(4, S=3)
    arrays["x_kv"] = arrays["x_q"]
    got = multi_head_attention_backward(**arrays, **options, grad_output=d_output)
    shared = torch.tensor(arrays["x_q"], requires_grad=True)
    others = {k: torch.tensor(a) for k, a in arrays.items() if k not in ("x_q", "x_kv")}
    (total,) = torch.autograd.grad(_torch_forward(shared, shared, **others, **options), [shared],
                                   torch.tensor(d_output))
    np.testing.assert_allclose(got.x_q + got.x_kv, total.numpy(), rtol=1e-12, atol=1e-13)
    assert not np.allclose(got.x_q, total.numpy())


def test_fully_masked_row_gives_zero_following_gradients():
    """Under ``zeros`` a row that keeps no key is the constant ``b_O``: finite gradients, and its ``dY`` row reaches
    only ``db_O`` (the same gradients as with that row of ``dY`` zeroed, ``db_O`` aside)."""
    mask = np.ones((2, 3, 4), dtype=bool)
    mask[0, 1] = False  # batch 0, row 1 keeps no key
    arrays, options, d_output = _case(5, mask=mask)
    got = multi_head_attention_backward(**arrays, **options, grad_output=d_output)
    quiet = d_output.copy()
    quiet[0, 1] = 0.0
    without = multi_head_attention_backward(**arrays, **options, grad_output=quiet)
    for name in NAMES:
        assert np.all(np.isfinite(getattr(got, name))), name
        if name != "b_o":
            np.testing.assert_allclose(getattr(got, name), getattr(without, name), rtol=1e-13, atol=1e-15,
                                       err_msg=name)
    assert np.all(got.x_q[0, 1] == 0.0)
    np.testing.assert_allclose(got.b_o - without.b_o, d_output[0, 1], rtol=1e-13)


def test_unbatched_inputs_give_unbatched_gradients():
    arrays, options, d_output = _case(6, B=1)
    batched = multi_head_attention_backward(**arrays, **options, grad_output=d_output)
    single = multi_head_attention_backward(**{**arrays, "x_q": arrays["x_q"][0], "x_kv": arrays["x_kv"][0]},
                                           **options, grad_output=d_output[0])
    assert single.x_q.shape == arrays["x_q"].shape[1:]
    np.testing.assert_allclose(single.x_kv, batched.x_kv[0], rtol=1e-14)
    np.testing.assert_allclose(single.w_o, batched.w_o, rtol=1e-14)
    with pytest.raises(ValueError, match="grad_output"):
        multi_head_attention_backward(**arrays, **options, grad_output=d_output[0])
