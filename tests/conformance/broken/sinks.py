"""Broken attention sinks (NumPy), one plausible bug each; ``breaks`` names the clause.

Each is declared ``sinks=True`` and is correct without sinks: the scores, masks and head mapping
are those of :func:`._base.attention`, and only what the softmax does with the sink is wrong.
"""

from __future__ import annotations

import numpy as np

from ._base import attention, breaks, masked_scores, repeat_heads, scores_of, stable_softmax


def _with_sinks(query, key, value, attn_mask, is_causal, scale, enable_gqa, sinks, *, rule):
    """``rule(x (..., H_q, L, S), sink (H_q, 1, 1), value (..., H_q, S, Ev))``, the output, in float64, returned in the
    query's dtype; without sinks the plain attention."""
    if sinks is None:
        return attention(query, key, value, attn_mask, 0.0, is_causal, scale, enable_gqa)
    if enable_gqa:
        key, value = repeat_heads(key, query.shape[-3]), repeat_heads(value, query.shape[-3])
    query, key, value = (np.asarray(a, dtype=np.float64) for a in (query, key, value))
    s = 1.0 / np.sqrt(query.shape[-1]) if scale is None else scale
    x = masked_scores(scores_of(query, key, s), attn_mask, is_causal)  # (..., H_q, L, S)
    sink = np.asarray(sinks, dtype=np.float64)[:, None, None]  # (H_q, 1, 1): one per row of head h
    with np.errstate(all="ignore"):
        return rule(x, sink, value).astype(query.dtype)


def _row_max(x):
    """The max of each row's kept scores, ``(..., L, 1)``, 0 on a row without one."""
    top = np.max(x, axis=-1, keepdims=True)
    return np.where(np.isfinite(top), top, 0.0)


@breaks("sinks.mass", sinks=True)
def sink_ignored(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                 sinks=None):
    """Accepts sinks and drops them: every row's weights sum to 1."""
    return _with_sinks(query, key, value, attn_mask, is_causal, scale, enable_gqa, sinks,
                       rule=lambda x, sink, value: stable_softmax(x) @ value)


def _first_value_key(x, sink, value):
    """The sink as one more key, score sink_h, whose value row is the first value row (a "sink token")."""
    extended = np.concatenate([x, np.broadcast_to(sink, x.shape[:-1] + (1,))], axis=-1)  # (..., L, S + 1)
    p = stable_softmax(extended)
    return p[..., :-1] @ value + p[..., -1:] * value[..., :1, :]


@breaks("sinks.limit", sinks=True)
def sink_as_first_value_key(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                            enable_gqa=False, sinks=None):
    """Appends the sink as a key whose value is the first value row, as a real sink token would have: a sink far above
    the scores gives V_0, not 0."""
    return _with_sinks(query, key, value, attn_mask, is_causal, scale, enable_gqa, sinks, rule=_first_value_key)


def _unshifted(x, sink, value):
    m = _row_max(x)
    numerator = np.exp(x - m)
    return numerator / (numerator.sum(axis=-1, keepdims=True) + np.exp(sink)) @ value


@breaks("sinks.formula", sinks=True)
def sink_unshifted(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                   sinks=None):
    """Adds exp(sink_h) to the shifted sum of exp(x_k - m): right only when the row max is 0, and exp(sink_h)
    overflows to inf (weights 0) once the sink passes exp's range."""
    return _with_sinks(query, key, value, attn_mask, is_causal, scale, enable_gqa, sinks, rule=_unshifted)


def _max_of_scores_only(x, sink, value):
    m = np.max(x, axis=-1, keepdims=True)  # -inf on a row without a key: exp(-inf - -inf) is NaN
    numerator = np.exp(x - m)
    return numerator / (numerator.sum(axis=-1, keepdims=True) + np.exp(sink - m)) @ value


@breaks("sinks.empty-row", sinks=True)
def nan_on_empty_row(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                     sinks=None):
    """Shifts by the max of the kept scores alone, not of the scores and the sink: a row without a key is NaN (and
    exp(sink_h - m) overflows once the sink passes the scores by exp's range)."""
    return _with_sinks(query, key, value, attn_mask, is_causal, scale, enable_gqa, sinks, rule=_max_of_scores_only)


def _reversed(x, sink, value):
    m = np.maximum(_row_max(x), sink[::-1])
    numerator = np.exp(x - m)
    return numerator / (numerator.sum(axis=-1, keepdims=True) + np.exp(sink[::-1] - m)) @ value


@breaks("sinks.head-order", sinks=True)
def sinks_reversed(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                   sinks=None):
    """Gives query head h the sink of head H_q - 1 - h."""
    return _with_sinks(query, key, value, attn_mask, is_causal, scale, enable_gqa, sinks, rule=_reversed)
