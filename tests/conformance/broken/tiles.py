"""Broken tiled kernels (NumPy), one bug at a tile boundary each; all break ``attention.tile-boundaries``.

Each is right on every case that fits in its first tile, which is all the small cases draw: only
lengths and widths past 64 or 128 show the bug.
"""

from __future__ import annotations

import numpy as np

from ._base import attention, breaks, causal_keep, masked_scores, scores_of


def _keys_first(count):
    def truncated(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        mask = None if attn_mask is None else attn_mask[..., :count]
        L, S = query.shape[-2], key.shape[-2]
        if is_causal and S > count:
            keep = causal_keep(L, S)[:, :count]  # (L, count): the causal rule of the full call
            mask = keep if mask is None else (mask & keep if mask.dtype == np.bool_ else np.where(keep, mask, -np.inf))
            is_causal = False
        return attention(query, key[..., :count, :], value[..., :count, :], mask, dropout_p, is_causal, scale,
                         enable_gqa)
    return truncated


@breaks("attention.tile-boundaries")
def keys_first_128(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Attends only to the first 128 keys (the last key tiles dropped)."""
    return _keys_first(128)(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


@breaks("attention.tile-boundaries")
def keys_first_64(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Attends only to the first 64 keys."""
    return _keys_first(64)(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


@breaks("attention.tile-boundaries")
def head_dim_64(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Uses only the first 64 features of each query and key (the scale still that of the full E)."""
    s = 1.0 / np.sqrt(query.shape[-1]) if scale is None else scale
    return attention(query[..., :64], key[..., :64], value, attn_mask, dropout_p, is_causal, s, enable_gqa)


@breaks("attention.tile-boundaries")
def last_query_tile_unwritten(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                              enable_gqa=False):
    """Leaves the rows of the last, partial tile of 64 query rows as zeros."""
    out = attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    L = query.shape[-2]
    if L > 64 and L % 64:
        out[..., 64 * (L // 64):, :] = 0
    return out


@breaks("attention.tile-boundaries")
def tiles_normalised_alone(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                           enable_gqa=False):
    """Each tile of 64 keys is shifted by its own max, and the tiles' sums are added without rescaling."""
    def softmax(x):
        numerator = np.zeros_like(x)
        for j0 in range(0, x.shape[-1], 64):
            block = x[..., j0:j0 + 64]
            top = np.max(block, axis=-1, keepdims=True)
            numerator[..., j0:j0 + 64] = np.exp(block - np.where(np.isfinite(top), top, 0.0))
        total = numerator.sum(axis=-1, keepdims=True)
        return np.where(total > 0, numerator / np.where(total > 0, total, 1.0), 0.0)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, softmax=softmax)


@breaks("attention.tile-boundaries")
def causal_ahead_in_second_tile(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                enable_gqa=False):
    """Inside the second tile of 64 query rows the causal diagonal is one key ahead (j <= i + 1)."""
    if not is_causal:
        return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    L, S = query.shape[-2], key.shape[-2]
    rows = np.arange(L)[:, None]
    keep = np.arange(S)[None, :] <= rows + ((rows >= 64) & (rows < 128))  # (L, S)
    mask = keep if attn_mask is None else (attn_mask & keep if attn_mask.dtype == np.bool_ else
                                           np.where(keep, attn_mask, -np.inf))
    return attention(query, key, value, mask, dropout_p, False, scale, enable_gqa)


@breaks("attention.tile-boundaries")
def value_features_64(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Writes only the first 64 value features of each output row (one tile of Ev); the others stay 0."""
    out = attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    out[..., 64:] = 0
    return out
