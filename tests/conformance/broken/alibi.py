"""Broken ALiBi implementations (NumPy), one plausible bug each; ``breaks`` names the clause.

Each is declared ``alibi=True`` and is correct without slopes: the bias becomes a float mask added to
``attn_mask`` (``-inf`` where a bool mask drops a key), and only the rule that builds the bias is wrong.
"""

from __future__ import annotations

import numpy as np

from ._base import attention, breaks, with_bias


def _distance(L, S, o):
    """``(L, S)``: ``j - (i + o)``, the signed distance of key j from query i's own position."""
    return np.arange(S)[None, :] - np.arange(L)[:, None] - o


def _biased(query, key, value, attn_mask, is_causal, scale, enable_gqa, alibi_slopes, *, rule, causal_offset=0):
    """Attention with the bias ``rule(slopes (..., 1, 1), L, S) -> (..., L, S)`` folded into ``attn_mask``."""
    if alibi_slopes is not None:
        L, S = query.shape[-2], key.shape[-2]
        bias = rule(np.asarray(alibi_slopes, dtype=np.float64)[..., None, None], L, S)  # (..., L, S)
        attn_mask = with_bias(attn_mask, bias)
    return attention(query, key, value, attn_mask, 0.0, is_causal, scale, enable_gqa, causal_offset=causal_offset)


@breaks("alibi.formula", alibi=True)
def sign_flipped(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                 alibi_slopes=None):
    """Adds +m_h |i - j|: the far keys win instead of the near ones."""
    return _biased(query, key, value, attn_mask, is_causal, scale, enable_gqa, alibi_slopes,
                   rule=lambda m, L, S: m * np.abs(_distance(L, S, 0)))


@breaks("alibi.head-order", alibi=True)
def slopes_reversed(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                    alibi_slopes=None):
    """Gives head h the slope of head H_q - 1 - h (the paper's list read from the small end)."""
    return _biased(query, key, value, attn_mask, is_causal, scale, enable_gqa, alibi_slopes,
                   rule=lambda m, L, S: -m[..., ::-1, :, :] * np.abs(_distance(L, S, 0)))


@breaks("alibi.per-row-form", alibi=True)
def per_row_form(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                 alibi_slopes=None):
    """Adds +m_h j to every row, the form that equals ALiBi only under a causal mask, with or without one."""
    return _biased(query, key, value, attn_mask, is_causal, scale, enable_gqa, alibi_slopes,
                   rule=lambda m, L, S: m * np.broadcast_to(np.arange(S, dtype=np.float64), (L, S)))


@breaks("alibi.formula", alibi=True, causal_alignment="bottom-right")
def offset_top_left(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                    alibi_slopes=None):
    """Declares bottom-right but centres the bias on key i (|i - j|) instead of i + S - L; is_causal is right."""
    return _biased(query, key, value, attn_mask, is_causal, scale, enable_gqa, alibi_slopes,
                   rule=lambda m, L, S: -m * np.abs(_distance(L, S, 0)),
                   causal_offset=key.shape[-2] - query.shape[-2])
