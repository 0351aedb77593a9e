"""Broken log-sum-exp implementations (NumPy), one plausible bug each; ``breaks`` names the clause.

Each is declared ``lse=True`` and returns the right output: only the lse beside it is wrong.
"""

from __future__ import annotations

import numpy as np

from ._base import breaks, masked_scores, repeat_heads, scores_of, stable_softmax


def _with_lse(query, key, value, attn_mask, is_causal, scale, enable_gqa, return_lse, *, lse):
    """softmax(x) V in float64 in the query's dtype and, asked for, ``lse(x, s)`` in float32 or float64 from the
    masked scores ``x (..., L, S)`` and the scale ``s``."""
    out_dtype = query.dtype
    if enable_gqa:
        key, value = repeat_heads(key, query.shape[-3]), repeat_heads(value, query.shape[-3])
    query, key, value = (np.asarray(a, dtype=np.float64) for a in (query, key, value))
    s = 1.0 / np.sqrt(query.shape[-1]) if scale is None else scale
    x = masked_scores(scores_of(query, key, s), attn_mask, is_causal)  # (..., L, S)
    out = (stable_softmax(x) @ value).astype(out_dtype)
    if not return_lse:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        found = lse(x, s)  # (..., L)
    return out, found.astype(np.float64 if out_dtype == np.float64 else np.float32)


def _shifted(x):
    """``(m, log sum_j exp(x_j - m))`` of each row, ``m`` 0 on a row with no kept key."""
    m = np.max(x, axis=-1)
    m = np.where(np.isfinite(m), m, 0.0)
    return m, np.log(np.sum(np.exp(x - m[..., None]), axis=-1))


@breaks("lse.definition", lse=True)
def lse_in_base_two(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                    return_lse=False):
    """Keeps its sums in base 2 (as exp2 kernels do) and returns log2 sum_j 2^(x_j log2 e): lse / ln 2."""
    def lse(x, s):
        m, log_l = _shifted(x)
        return (m + log_l) / np.log(2)
    return _with_lse(query, key, value, attn_mask, is_causal, scale, enable_gqa, return_lse, lse=lse)


@breaks("lse.definition", lse=True)
def scale_folded_twice(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                       enable_gqa=False, return_lse=False):
    """Multiplies the already scaled scores by the scale again inside the lse: log sum_j exp(s x_j)."""
    def lse(x, s):
        m, log_l = _shifted(s * x)
        return m + log_l
    return _with_lse(query, key, value, attn_mask, is_causal, scale, enable_gqa, return_lse, lse=lse)


@breaks("lse.definition", lse=True)
def shift_not_added_back(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                         enable_gqa=False, return_lse=False):
    """Returns log sum_j exp(x_j - m), the lse without its row max m."""
    return _with_lse(query, key, value, attn_mask, is_causal, scale, enable_gqa, return_lse,
                     lse=lambda x, s: _shifted(x)[1])


@breaks("lse.empty-row", lse=True)
def empty_row_zero(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                   return_lse=False):
    """Gives a row with no kept key the lse 0 instead of -inf (what torch's CPU flash kernel returns)."""
    def lse(x, s):
        m, log_l = _shifted(x)
        return np.where(np.isfinite(log_l), m + log_l, 0.0)
    return _with_lse(query, key, value, attn_mask, is_causal, scale, enable_gqa, return_lse, lse=lse)
