"""Broken soft-capping implementations (NumPy), one plausible bug each; ``breaks`` names the clause.

Each is declared ``softcap=True`` and is correct without a cap: only where and how the cap is
applied is wrong.
"""

from __future__ import annotations

import numpy as np

from ._base import breaks, masked_scores, repeat_heads, stable_softmax


def _capped_attention(query, key, value, attn_mask, is_causal, scale, enable_gqa, softcap, *, cap):
    """softmax(capped scores) V in float64, returned in the query's dtype; ``cap(raw, s, c, mask, causal)`` makes the
    masked, capped scores from the raw dot products ``q . k``."""
    out_dtype = query.dtype
    if enable_gqa:
        key, value = repeat_heads(key, query.shape[-3]), repeat_heads(value, query.shape[-3])
    query, key, value = (np.asarray(a, dtype=np.float64) for a in (query, key, value))
    s = 1.0 / np.sqrt(query.shape[-1]) if scale is None else scale
    raw = query @ np.swapaxes(key, -1, -2)  # (..., L, S)
    if softcap is None:
        x = masked_scores(raw * s, attn_mask, is_causal)
    else:
        x = cap(raw, s, softcap, attn_mask, is_causal)
    return (stable_softmax(x) @ value).astype(out_dtype)


@breaks("softcap.formula", softcap=True)
def cap_before_scale(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                     softcap=None):
    """Caps the raw dot product, then scales: s c tanh(q.k / c) instead of c tanh(s q.k / c)."""
    return _capped_attention(query, key, value, attn_mask, is_causal, scale, enable_gqa, softcap,
                             cap=lambda raw, s, c, m, causal: masked_scores(s * c * np.tanh(raw / c), m, causal))


@breaks("softcap.order", softcap=True)
def cap_after_mask(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                   softcap=None):
    """Masks first and caps the masked scores: -inf becomes -c, so masked keys keep a weight."""
    return _capped_attention(query, key, value, attn_mask, is_causal, scale, enable_gqa, softcap,
                             cap=lambda raw, s, c, m, causal: c * np.tanh(masked_scores(s * raw, m, causal) / c))


@breaks("softcap.bounded", softcap=True)
def cap_ignored(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                softcap=None):
    """Takes the keyword and drops it: the scores are never capped."""
    return _capped_attention(query, key, value, attn_mask, is_causal, scale, enable_gqa, softcap,
                             cap=lambda raw, s, c, m, causal: masked_scores(s * raw, m, causal))


@breaks("softcap.formula", softcap=True)
def tanh_without_division(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                          enable_gqa=False, softcap=None):
    """Computes c tanh(x) instead of c tanh(x / c)."""
    return _capped_attention(query, key, value, attn_mask, is_causal, scale, enable_gqa, softcap,
                             cap=lambda raw, s, c, m, causal: masked_scores(c * np.tanh(s * raw), m, causal))
