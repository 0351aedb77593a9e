"""The built-in ``torch-flex-cpu``: FlexAttention called eagerly on the CPU, each variant a ``score_mod`` or ``mask_mod``.

Each mapping is compared on one small case with the float64 reference (window, softcap, ALiBi, key lengths, sinks,
lse, grouped-query attention, the top-left alignment of the causal rule), a few variant clauses run through the
``quick`` profile, and a wrong copy of a ``score_mod`` or ``mask_mod`` fails the clause it breaks. Kept lean: every
flex call costs tens of milliseconds and each new dtype or shape a dynamo trace (about a second).
"""

from __future__ import annotations

import numpy as np
import pytest

from kqv.conformance import Backend, check
from kqv.reference import scaled_dot_product_attention

torch = pytest.importorskip("torch")

from kqv.conformance.backends import builtin, torch_flex  # noqa: E402

UNAVAILABLE = builtin("torch-flex-cpu")["sdpa"].unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"torch-flex-cpu: {UNAVAILABLE}")

B, H, H_KV, L, S, E, EV = 2, 4, 2, 5, 7, 3, 2  # L != S: the alignment shows


def _arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, H, L, E)), rng.standard_normal((B, H, S, E)), rng.standard_normal((B, H, S, EV)),
            rng.standard_normal((B, H_KV, S, E)), rng.standard_normal((B, H_KV, S, EV)))


def _flex(query, key, value, **keywords):
    tensors = {name: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v for name, v in keywords.items()}
    result = torch_flex.sdpa(*(torch.from_numpy(a) for a in (query, key, value)), **tensors)
    return tuple(r.numpy() for r in result) if isinstance(result, tuple) else result.numpy()


q, k, v, k_grouped, v_grouped = _arrays()
rng = np.random.default_rng(1)
KEEP = rng.random((B, 1, L, S)) < 0.7
BIAS = np.where(rng.random((L, S)) < 0.8, rng.standard_normal((L, S)), -np.inf)
CASES = {
    "causal-top-left": dict(is_causal=True),
    "bool-mask": dict(attn_mask=KEEP),
    "float-mask": dict(attn_mask=BIAS),
    "window": dict(window=(2, 1)),
    "window-one-side": dict(window=(None, 0), attn_mask=KEEP),
    "window-causal": dict(window=(1, None), is_causal=True),
    "softcap": dict(softcap=0.5, scale=3.0),
    "alibi": dict(alibi_slopes=np.array([0.5, -0.25, 2.0, 1.0]), attn_mask=BIAS),
    "alibi-per-batch": dict(alibi_slopes=rng.uniform(0.1, 2.0, (B, H)), is_causal=True),
    "kv-lengths": dict(kv_lengths=np.array([3, 7]), is_causal=True, window=(1, 0)),
    "sinks": dict(sinks=np.array([0.0, 3.0, -2.0, 40.0]), attn_mask=KEEP),
    "everything": dict(softcap=1.5, alibi_slopes=np.array([0.5, 0.25, 0.125, 1.0]), kv_lengths=np.array([4, 6]),
                       window=(3, 1), sinks=np.array([1.0, -1.0, 0.5, 2.0]), attn_mask=BIAS, is_causal=True),
}


@pytest.mark.parametrize("grouped", [False, True], ids=["mha", "gqa"])
@pytest.mark.parametrize("name", list(CASES))
def test_each_mapping_gives_the_reference_and_its_lse(name: str, grouped: bool) -> None:
    keywords = dict(CASES[name], enable_gqa=grouped)
    key, value = (k_grouped, v_grouped) if grouped else (k, v)
    out, lse = _flex(q, key, value, return_lse=True, **keywords)
    expected, expected_lse = scaled_dot_product_attention(q, key, value, return_lse=True, **keywords)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert np.array_equal(np.isneginf(lse), np.isneginf(expected_lse))  # -inf exactly on rows with no key
    finite = np.isfinite(expected_lse)
    np.testing.assert_allclose(lse[finite], expected_lse[finite], rtol=1e-12, atol=1e-12)  # natural log


def test_rows_without_a_key_give_zeros_or_with_a_sink_zeros_and_the_sink_as_lse() -> None:
    keep = np.ones((L, S), dtype=bool)
    keep[1] = False
    out, lse = _flex(q, k, v, attn_mask=keep, return_lse=True)
    assert np.all(out[..., 1, :] == 0) and np.all(lse[..., 1] == -np.inf)
    sinks = np.array([0.0, 3.0, -2.0, 40.0])
    out, lse = _flex(q, k, v, attn_mask=keep, sinks=sinks, return_lse=True)
    assert np.all(out[..., 1, :] == 0) and np.array_equal(lse[..., 1], np.broadcast_to(sinks, (B, H)))


def test_a_sink_share_in_float32_subnormal_range_is_not_flushed() -> None:
    # Rows whose lse sits about 90 below their sink keep exp(-90) ~ 1e-39 of their mass, a float32 subnormal number:
    # torch.sigmoid computes 1 / (1 + exp(90)), whose exp overflows, and gives 0 there.
    query, key, value = (a.astype(np.float32) for a in (q, k, v))
    sinks = np.full(H, 92.0)
    out = _flex(query, key, value, sinks=sinks)
    expected = scaled_dot_product_attention(query, key, value, sinks=sinks)
    assert np.all(out[expected != 0] != 0)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-43)  # a few steps of 2**-149


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_every_dtype_comes_back_in_its_dtype_and_the_lse_in_float32_or_wider(dtype) -> None:
    tensors = [torch.from_numpy(a).to(dtype) for a in (q[0, 0], k[0, 0], v[0, 0])]  # (L, E): no batch dims
    out, lse = torch_flex.sdpa(*tensors, is_causal=True, return_lse=True)
    assert out.dtype == dtype and out.shape == (L, EV) and lse.shape == (L,)
    assert lse.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)


VARIANT_CLAUSES = ["window.index-rule", "alibi.per-row-form", "lengths.offset", "sinks.empty-row", "lse.definition"]


def test_the_quick_profile_passes_the_variant_clauses() -> None:
    report = check("torch-flex-cpu", "sdpa", profile="quick", seed=0, clauses=VARIANT_CLAUSES,
                   dtypes=("float32", "bfloat16"))
    [target] = report.targets
    assert {c.clause: c.status for c in target.clauses} == dict.fromkeys(VARIANT_CLAUSES, "passed")


def _alibi_sign_flipped(cap, slopes, bias):
    """A copy of :func:`torch_flex.score_mod_of` that adds ``+m |i - j|``."""
    def score_mod(score, b, h, q_idx, kv_idx):
        score = torch.where(cap > 0, cap * torch.tanh(score / cap), score)
        score = score + slopes[b, h] * torch.abs(q_idx - kv_idx)
        return score + bias[b, h, q_idx, kv_idx]
    return score_mod


def _alibi_signed_distance(cap, slopes, bias):
    """A copy with the FlexAttention blog's ALiBi, ``m (kv_idx - q_idx)``: right under causal masking only."""
    def score_mod(score, b, h, q_idx, kv_idx):
        score = torch.where(cap > 0, cap * torch.tanh(score / cap), score)
        score = score + slopes[b, h] * (kv_idx - q_idx)
        return score + bias[b, h, q_idx, kv_idx]
    return score_mod


def _window_left_off_by_one(keep, reach, left, right, lengths):
    """A copy of :func:`torch_flex.mask_mod_of` whose window keeps one key too many on the left."""
    from torch.nn.attention.flex_attention import and_masks

    return and_masks(lambda b, h, q_idx, kv_idx: keep[b, h, q_idx, kv_idx],
                     lambda b, h, q_idx, kv_idx: kv_idx <= q_idx + reach,
                     lambda b, h, q_idx, kv_idx: q_idx - kv_idx <= left + 1,
                     lambda b, h, q_idx, kv_idx: kv_idx - q_idx <= right,
                     lambda b, h, q_idx, kv_idx: kv_idx < lengths[b])


@pytest.mark.parametrize(("clause", "mods"), [
    ("alibi.formula", dict(score_mods=_alibi_sign_flipped)),
    ("alibi.per-row-form", dict(score_mods=_alibi_signed_distance)),
    ("window.index-rule", dict(mask_mods=_window_left_off_by_one)),
], ids=["alibi-sign", "alibi-signed-distance", "window-off-by-one"])
def test_a_wrong_mod_fails_its_clause(clause: str, mods: dict) -> None:
    correct = builtin("torch-flex-cpu")["sdpa"]
    broken = Backend("torch-flex-cpu-broken", torch_flex.flex_sdpa(**mods), correct.declaration, correct.adapter)
    report = check(broken, profile="quick", seed=0, clauses=[clause], dtypes=("float64",), isolation=False)
    [target] = report.targets
    [result] = target.clauses
    assert result.clause == clause and result.status == "failed", result


def test_without_flex_the_backend_is_unavailable_with_the_reason(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch.nn.attention.flex_attention", None)  # the import now fails
    reason = torch_flex.FlexAdapter("cpu").unavailable()
    assert reason and "FlexAttention" in reason
