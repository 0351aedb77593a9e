"""Broken key-length implementations (NumPy), one plausible bug each; ``breaks`` names the clause.

Each is declared ``kv_lengths=True`` and is correct without lengths: the lengths, and under
``is_causal`` the causal rule, become a keep-mask ``(B, 1, L, S)`` combined with ``attn_mask``,
and only the rule that builds it is wrong. ``decode_drops_last_key`` breaks the KV-cache clause.
"""

from __future__ import annotations

import numpy as np

from ._base import attention, breaks, causal_keep, with_keep


def _lengths_keep(L, S, lengths, is_causal, *, rule, offset):
    """``(B, 1, L, S)``: entry ``b`` keeps ``rule(S, n_b)`` and, causal, ``j <= i + offset(n_b, L, S)``."""
    kept = np.stack([rule(S, int(n))[None, :] & (causal_keep(L, S, offset(int(n), L, S)) if is_causal else True)
                     for n in lengths])  # (B, L, S)
    return np.broadcast_to(kept, (len(lengths), L, S))[:, None]  # (B, 1, L, S)


def _with_lengths(query, key, value, attn_mask, is_causal, scale, enable_gqa, kv_lengths, *,
                  rule=lambda S, n: np.arange(S) < n, offset=lambda n, L, S: 0):
    """Attention with the keep-mask of the lengths (and the causal rule) folded into ``attn_mask``."""
    if kv_lengths is None:
        return attention(query, key, value, attn_mask, 0.0, is_causal, scale, enable_gqa)
    L, S = query.shape[-2], key.shape[-2]
    kept = _lengths_keep(L, S, np.asarray(kv_lengths), is_causal, rule=rule, offset=offset)
    return attention(query, key, value, with_keep(attn_mask, kept), 0.0, False, scale, enable_gqa)


@breaks("lengths.index-rule", kv_lengths=True)
def lengths_off_by_one(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                       enable_gqa=False, kv_lengths=None):
    """Keeps keys j <= n_b: one padding key too many."""
    return _with_lengths(query, key, value, attn_mask, is_causal, scale, enable_gqa, kv_lengths,
                         rule=lambda S, n: np.arange(S) <= n)


@breaks("lengths.padding", kv_lengths=True)
def lengths_ignored(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                    enable_gqa=False, kv_lengths=None):
    """Takes the keyword and drops it: the padding is attended to."""
    return attention(query, key, value, attn_mask, 0.0, is_causal, scale, enable_gqa)


@breaks("lengths.offset", kv_lengths=True, causal_alignment="bottom-right")
def offset_from_keys(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                     enable_gqa=False, kv_lengths=None):
    """Declares bottom-right but aligns the causal rule to the last key, S - L, instead of the last valid one."""
    return _with_lengths(query, key, value, attn_mask, is_causal, scale, enable_gqa, kv_lengths,
                         offset=lambda n, L, S: S - L)


@breaks("lengths.empty-row", kv_lengths=True)
def empty_entry_keeps_a_key(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                            enable_gqa=False, kv_lengths=None):
    """Clamps each length to at least 1, so an entry of length 0 reads its first padding key."""
    lengths = None if kv_lengths is None else np.maximum(np.asarray(kv_lengths), 1)
    return _with_lengths(query, key, value, attn_mask, is_causal, scale, enable_gqa, lengths)


@breaks("cache.decode")
def decode_drops_last_key(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                          enable_gqa=False):
    """A single-query (decoding) path that reads the cache up to its next-to-last key."""
    if query.shape[-2] == 1 and key.shape[-2] > 1 and attn_mask is None and not is_causal:
        key, value = key[..., :-1, :], value[..., :-1, :]
    return attention(query, key, value, attn_mask, 0.0, is_causal, scale, enable_gqa)
