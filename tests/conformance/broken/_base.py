"""A plain NumPy attention with hooks where the broken variants put their one bug."""

from __future__ import annotations

import numpy as np


def breaks(clause: str, **declaration):
    """Mark a broken implementation with the clause it breaks and the declaration it is checked under."""
    def mark(fn):
        fn.breaks = clause
        fn.declaration = declaration
        return fn
    return mark


def declared(**declaration):
    """Mark a broken implementation that no profile's cases catch (the diagnosis names it on a case made for it) with
    the declaration it is checked under."""
    def mark(fn):
        fn.declaration = declaration
        return fn
    return mark


def causal_keep(L: int, S: int, offset: int = 0) -> np.ndarray:
    return np.arange(S)[None, :] <= np.arange(L)[:, None] + offset  # (L, S)


def scores_of(query, key, scale):
    return (query @ np.swapaxes(key, -1, -2)) * scale  # (..., L, S)


def masked_scores(scores, attn_mask, is_causal, *, invert_bool=False, causal_offset=0):
    L, S = scores.shape[-2:]
    if attn_mask is not None:
        if attn_mask.dtype == np.bool_:
            keep = ~attn_mask if invert_bool else attn_mask
            scores = np.where(keep, scores, -np.inf)
        else:
            scores = scores + attn_mask.astype(np.float64)
    if is_causal:
        scores = np.where(causal_keep(L, S, causal_offset), scores, -np.inf)
    return scores


def with_bias(attn_mask, bias):
    """``attn_mask`` with the float ``bias`` ``(..., L, S)`` added: the bias alone without a mask, ``-inf`` where a bool
    mask drops a key, the sum with a float mask."""
    if attn_mask is None:
        return bias
    if attn_mask.dtype == np.bool_:
        return np.where(attn_mask, bias, -np.inf)
    return attn_mask.astype(np.float64) + bias


def with_keep(attn_mask, kept):
    """``attn_mask`` with the bool keep-mask ``kept`` folded in: ``kept`` alone without a mask, and-ed with a bool mask,
    ``-inf`` where ``kept`` drops a key of a float mask (in its dtype)."""
    if attn_mask is None:
        return kept
    if attn_mask.dtype == np.bool_:
        return attn_mask & kept
    return np.where(kept, attn_mask.astype(np.float64), -np.inf).astype(attn_mask.dtype)


def stable_softmax(scores, axis=-1):
    top = np.max(scores, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(scores - top)
    total = np.sum(weights, axis=axis, keepdims=True)
    return np.where(total > 0, weights / np.where(total > 0, total, 1.0), 0.0)


def repeat_heads(array, query_heads):
    """Key or value ``(..., H_kv, S, .)`` repeated in place to ``(..., H_q, S, .)``: head h reads h // G."""
    return np.repeat(array, query_heads // array.shape[-3], axis=-3)


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False, *,
              compute=np.float64, softmax=stable_softmax, invert_bool=False, causal_offset=0, scale_rule=None,
              map_keys=repeat_heads, map_values=repeat_heads, matmul=np.matmul):
    """softmax(s Q K^T + M) V computed in ``compute`` with ``matmul``, returned in the query's dtype (zeros for empty
    rows).

    With ``enable_gqa`` the key and value heads go through ``map_keys`` and ``map_values``
    (``(array, H_q) -> array with H_q heads``), repeat-interleave unless a bug says otherwise.
    """
    out_dtype = query.dtype
    if enable_gqa:
        key, value = map_keys(key, query.shape[-3]), map_values(value, query.shape[-3])
    query, key, value = (np.asarray(a, dtype=compute) for a in (query, key, value))
    E = query.shape[-1]
    s = scale_rule(E, scale) if scale_rule else (1.0 / np.sqrt(E) if scale is None else scale)
    scores = masked_scores(matmul(query, np.swapaxes(key, -1, -2)) * s, attn_mask, is_causal,
                           invert_bool=invert_bool, causal_offset=causal_offset)  # (..., L, S)
    return matmul(softmax(scores), value).astype(out_dtype)


def sequential_matmul(a, b):
    """``a @ b`` accumulated one term at a time in ``a``'s dtype, each partial sum rounded to it (NumPy's own
    float16 matmul is far more accurate than a kernel that accumulates in float16)."""
    dtype = a.dtype
    total = np.zeros(np.broadcast_shapes(a.shape[:-1] + (1,), b.shape[:-2] + (1, b.shape[-1])), dtype=dtype)
    for e in range(a.shape[-1]):
        total = (total + a[..., :, e:e + 1] * b[..., e:e + 1, :]).astype(dtype)  # (..., n, m)
    return total


def sequential_softmax(x):
    """:func:`stable_softmax` whose row sums accumulate one term at a time in ``x``'s dtype."""
    top = np.max(x, axis=-1, keepdims=True)
    weights = np.exp(x - np.where(np.isfinite(top), top, 0)).astype(x.dtype)
    total = sequential_matmul(weights, np.ones(weights.shape[-1:] + (1,), dtype=x.dtype))  # (..., L, 1)
    return np.where(total > 0, weights / np.where(total > 0, total, 1), 0).astype(x.dtype)
