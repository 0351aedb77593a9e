"""Broken sliding-window implementations (NumPy), one plausible bug each; ``breaks`` names the clause.

Each is declared ``window=True`` and is correct without a window: the window becomes a keep-mask
combined with ``attn_mask``, and only the rule that builds that keep-mask is wrong.
"""

from __future__ import annotations

import numpy as np

from ._base import attention, breaks, with_keep


def _keep(L, S, o, left, right):
    """``(L, S)``: True where ``i + o - left <= j <= i + o + right`` (a side None unbounded)."""
    distance = np.arange(S)[None, :] - np.arange(L)[:, None] - o  # j - (i + o)
    kept = np.ones((L, S), dtype=bool)
    if left is not None:
        kept &= distance >= -left
    if right is not None:
        kept &= distance <= right
    return kept


def _windowed(query, key, value, attn_mask, is_causal, scale, enable_gqa, window, *, rule, causal_offset=0):
    """Attention with the window's keep-mask from ``rule(L, S, left, right)`` folded into ``attn_mask``."""
    if window is not None:
        L, S = query.shape[-2], key.shape[-2]
        attn_mask = with_keep(attn_mask, rule(L, S, *window))
    return attention(query, key, value, attn_mask, 0.0, is_causal, scale, enable_gqa, causal_offset=causal_offset)


@breaks("window.index-rule", window=True)
def left_off_by_one(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                    window=None):
    """Keeps one key too many on the left: from i - left - 1."""
    return _windowed(query, key, value, attn_mask, is_causal, scale, enable_gqa, window,
                     rule=lambda L, S, left, right: _keep(L, S, 0, None if left is None else left + 1, right))


@breaks("window.index-rule", window=True)
def right_off_by_one(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                     window=None):
    """Keeps one key too few on the right: up to i + right - 1 (a window (W, 0) drops the query's own key)."""
    return _windowed(query, key, value, attn_mask, is_causal, scale, enable_gqa, window,
                     rule=lambda L, S, left, right: _keep(L, S, 0, left, None if right is None else right - 1))


@breaks("window.index-rule", window=True, causal_alignment="bottom-right")
def aligned_top_left(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                     window=None):
    """Declares bottom-right but centres the window on key i (top-left) instead of i + S - L; is_causal is right."""
    return _windowed(query, key, value, attn_mask, is_causal, scale, enable_gqa, window,
                     rule=lambda L, S, left, right: _keep(L, S, 0, left, right),
                     causal_offset=key.shape[-2] - query.shape[-2])


@breaks("window.index-rule", window=True)
def symmetric(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
              window=None):
    """Uses the left size on both sides (a window "of size w" read as w keys either way)."""
    return _windowed(query, key, value, attn_mask, is_causal, scale, enable_gqa, window,
                     rule=lambda L, S, left, right: _keep(L, S, 0, left, left))


@breaks("window.causal", window=True)
def unbounded_means_none(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                         enable_gqa=False, window=None):
    """Reads a side None as 0 keys instead of unbounded: (None, 0) keeps only the query's own key."""
    return _windowed(query, key, value, attn_mask, is_causal, scale, enable_gqa, window,
                     rule=lambda L, S, left, right: _keep(L, S, 0, left or 0, right or 0))


@breaks("window.outside-keys", window=True)
def outside_keys_leak(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                      enable_gqa=False, window=None):
    """Fills the scores outside the window with -30 instead of -inf: far keys keep a small weight."""
    if window is None:
        return attention(query, key, value, attn_mask, 0.0, is_causal, scale, enable_gqa)
    L, S = query.shape[-2], key.shape[-2]
    bias = np.where(_keep(L, S, 0, *window), 0.0, -30.0)
    if attn_mask is not None and attn_mask.dtype == np.bool_:
        bias = np.where(attn_mask, bias, -np.inf)
    elif attn_mask is not None:
        bias = bias + attn_mask.astype(np.float64)
    return attention(query, key, value, bias.astype(query.dtype), 0.0, is_causal, scale, enable_gqa)
