"""Broken implementations written the way people write attention, with torch as well as NumPy.

``masked_fill_minus_1e9`` is the annotated transformer's ``scores.masked_fill(mask == 0, -1e9)``: torch refuses
the constant for a float16 tensor ("value cannot be converted to type c10::Half without overflow"), whatever the
clause. ``causal_dropped_with_mask`` builds its causal mask only when no attn_mask is given (a padding mask and a
causal mask that never meet).
"""

from __future__ import annotations

import math

from ._base import attention, breaks


def masked_fill_minus_1e9(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """torch: masked scores filled with -1e9 (``masked_fill``), the causal rule too; takes and returns tensors."""
    import torch

    s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = query @ key.transpose(-2, -1) * s  # (..., L, S)
    L, S = scores.shape[-2:]
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, -1e9)
        else:
            scores = scores + attn_mask
    if is_causal:
        keep = torch.ones(L, S, dtype=torch.bool, device=scores.device).tril()  # (L, S): j <= i
        scores = scores.masked_fill(~keep, -1e9)
    return torch.softmax(scores, dim=-1) @ value


@breaks("mask.causal.top-left")
def causal_dropped_with_mask(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Applies is_causal only when no attn_mask is given: with a mask, the causal rule is lost."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal and attn_mask is None, scale)
