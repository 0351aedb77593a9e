"""The stages of scaled dot-product attention, in the order of DESIGN.md, shared by every form.

One call goes through these stages (each names its clauses):

0. heads: key and value mapped to the query heads, query head h reading key/value head
   ``floor(h / G)`` (:func:`map_heads`; ``gqa.head-mapping``);
1. scores: ``x = s Q K^T`` (:func:`scores`; ``scores.dot-product``, ``scores.scale.*``), then with a
   cap ``x = c tanh(x / c)`` (:func:`soft_cap`; ``softcap.formula``);
2. biases: ``x - m_h |i + o - j|`` with ALiBi slopes ``m`` (:func:`add_alibi`; ``alibi.formula``),
   then ``x + M`` for a float mask ``M``, whose ``-inf`` entries drop their keys
   (:func:`add_biases`; ``mask.additive``);
3. keep mask: the keys a bool mask, the causal rule, a sliding window or a key length leaves out
   get the score ``-inf`` (:func:`drop_keys`, :func:`drop_causal`, :func:`drop_window`,
   :func:`drop_beyond`; ``mask.bool``, ``mask.causal.*``, ``window.index-rule``,
   ``lengths.index-rule``);
4. softmax over the keys left, shifted by the row max (:func:`softmax`; ``softmax.stable``,
   ``mask.zero-weight``), with a sink per query head one more term of its denominator
   (``sinks.formula``), or its online form block by block (``softmax.online``, in
   :mod:`kqv.reference.blocked`); the log of its denominator is the lse (:func:`log_sum_exp`;
   ``lse.definition``, ``lse.empty-row``);
5. output: ``O = P V`` (:func:`weighted_sum`; ``output.weighted-sum``);
6. rows that keep no key follow the convention asked (:func:`fill_masked_rows`;
   ``mask.fully-masked-row``); with sinks they are 0 (``sinks.empty-row``).

The dense float64 form (:func:`kqv.reference.scaled_dot_product_attention`) runs them on whole arrays, the blocked form
(:mod:`kqv.reference.blocked`) on blocks of rows and keys, the oracle (:mod:`kqv.reference.oracle`)
on whole arrays of mpmath numbers, and the tolerance model of ``kqv.conformance`` reads the scores,
their magnitudes and the kept keys from the same stages. Each stage takes the arithmetic it
computes in (:mod:`kqv.reference.arithmetic`); the in-place stages work on any writable array.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .arithmetic import FLOAT64

def group_size(query_heads: int, kv_heads: int) -> int:
    """``G = H_q / H_kv``, the query heads that share one key/value head (clause ``gqa.head-mapping``)."""
    return query_heads // kv_heads


def kv_head(head: int, query_heads: int, kv_heads: int) -> int:
    """The key/value head that query head ``head`` reads: ``floor(head / G)`` (clause ``gqa.head-mapping``)."""
    return head // group_size(query_heads, kv_heads)


def map_heads(key: np.ndarray, value: np.ndarray, query_heads: int) -> tuple[np.ndarray, np.ndarray]:
    """Stage 0: key ``(..., H_kv, S, E)`` and value ``(..., H_kv, S, Ev)`` repeated in place to ``H_q`` heads.

    Query head ``h`` reads key/value head ``floor(h / G)``, ``G = H_q / H_kv``: repeat-interleave
    along the head axis, not tiling (clauses ``gqa.head-mapping``, ``gqa.repeat-interleave``).
    """
    group = group_size(query_heads, key.shape[-3])
    if group == 1:
        return key, value
    return np.repeat(key, group, axis=-3), np.repeat(value, group, axis=-3)  # (..., H_q, S, E), (..., H_q, S, Ev)


def scores(query: np.ndarray, key: np.ndarray, scale: Any, ops=FLOAT64) -> np.ndarray:
    """Stage 1: ``x = s Q K^T``, ``(..., R, w)`` from query rows ``(..., R, E)`` and keys ``(..., w, E)``.

    Clauses ``scores.dot-product``, ``scores.scale.default``, ``scores.scale.explicit``; the query is
    scaled before the product. With ``|Q|``, ``|K|`` and ``|s|`` it gives the magnitudes
    ``|s| |Q| |K|^T`` of the tolerance model.
    """
    return ops.matmul(query * scale, np.swapaxes(key, -1, -2))  # (..., R, w)


def soft_cap(x: np.ndarray, cap: Any, ops=FLOAT64) -> np.ndarray:
    """Stage 1, after the scale: ``x = c tanh(x / c)`` (clause ``softcap.formula``); ``cap`` None leaves ``x``.

    It comes before the biases and the keep-masks (clause ``softcap.order``), so the scores it sees
    are finite and a masked key still gets ``-inf`` afterwards.
    """
    if cap is None:
        return x
    return cap * ops.tanh(x / cap)


def alibi_bias(slopes: np.ndarray, rows: int, keys: int, k: int) -> np.ndarray:
    """``-m_h |t + k - c|``, ``(*slopes.shape, R, w)``, for rows ``t < R``, keys ``c < w`` and slopes ``(...)``.

    For rows ``i0 ..`` and keys ``j0 ..`` of a call with alignment offset ``o`` (0 top-left,
    ``S - L`` bottom-right), ``k = i0 + o - j0``: query ``i`` and key ``j`` get ``-m_h |i + o - j|``
    (clause ``alibi.formula``). The slopes are float64 or mpmath numbers alike.
    """
    distance = np.abs(np.arange(keys)[None, :] - np.arange(rows)[:, None] - k)  # (R, w): |c - (t + k)|
    return -slopes[..., None, None] * distance  # (..., R, w)


def add_alibi(x: np.ndarray, slopes: np.ndarray | None, k: int) -> np.ndarray:
    """Stage 2, in place: ``x -= m_h |t + k - c|`` in ``x (..., R, w)`` (:func:`alibi_bias`; clause ``alibi.formula``).

    ``slopes`` None adds nothing; else they line up with the batch dims of ``x`` from the right,
    ``(H_q,)`` or ``(B, H_q)``. The bias comes after the cap and before the keep-masks.
    """
    if slopes is not None:
        x += alibi_bias(slopes, *x.shape[-2:], k)
    return x


def add_biases(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Stage 2, in place: ``x += M`` for a float mask ``M`` (clause ``mask.additive``); a bool mask adds nothing.

    An entry ``-inf`` of ``M`` makes its score ``-inf``: the key is dropped.
    """
    if mask is not None and mask.dtype != np.bool_:
        x += mask
    return x


def drop_keys(x: np.ndarray, keep: np.ndarray | None, ops=FLOAT64) -> np.ndarray:
    """Stage 3, in place: the score of a key that the bool keep-mask leaves out becomes ``-inf`` (clause ``mask.bool``)."""
    if keep is not None and keep.dtype == np.bool_:
        np.copyto(x, ops.neg_inf, where=~keep)
    return x


@functools.lru_cache(maxsize=256)
def above_diagonal(rows: int, keys: int, k: int) -> np.ndarray:
    """``(rows, keys)`` bool, True where key ``c > t + k`` for row ``t``: what the causal rule drops."""
    above = ~np.tri(rows, keys, k=k, dtype=bool)
    above.flags.writeable = False
    return above


def drop_causal(x: np.ndarray, k: int, ops=FLOAT64) -> np.ndarray:
    """Stage 3, in place: in ``x (..., R, w)``, row ``t`` keeps key ``c`` iff ``c <= t + k``, the others get ``-inf``.

    For rows ``i0 ..`` and keys ``j0 ..`` of a call with causal offset ``o`` (query ``i`` keeps key
    ``j`` iff ``j <= i + o``: 0 top-left, ``S - L`` bottom-right; clauses ``mask.causal.top-left``,
    ``mask.causal.bottom-right``), ``k = i0 + o - j0``.
    """
    rows, keys = x.shape[-2:]
    first = max(0, k + 1)  # the first key some row does not see
    masked_rows = min(rows, keys - 1 - k)  # rows t < keys - 1 - k do not see every key
    if masked_rows > 0:
        np.copyto(x[..., :masked_rows, first:], ops.neg_inf,
                  where=above_diagonal(masked_rows, keys - first, k - first))
    return x


def drop_window(x: np.ndarray, k: int, window: tuple[int | None, int | None], ops=FLOAT64) -> np.ndarray:
    """Stage 3, in place: in ``x (..., R, w)``, row ``t`` keeps key ``c`` iff ``t + k - left <= c <= t + k + right``.

    For rows ``i0 ..`` and keys ``j0 ..`` of a call with alignment offset ``o`` (0 top-left,
    ``S - L`` bottom-right), ``k = i0 + o - j0``: query ``i`` keeps key ``j`` iff
    ``i + o - left <= j <= i + o + right`` (clause ``window.index-rule``); a side that is None is
    unbounded, so ``(None, 0)`` is the causal rule (clause ``window.causal``).
    """
    left, right = window
    rows, keys = x.shape[-2:]
    distance = np.arange(keys)[None, :] - np.arange(rows)[:, None] - k  # (R, w): c - (t + k)
    outside = np.zeros((rows, keys), dtype=bool)
    if left is not None:
        outside |= distance < -left
    if right is not None:
        outside |= distance > right
    np.copyto(x, ops.neg_inf, where=outside)
    return x


def drop_beyond(x: np.ndarray, length: int, ops=FLOAT64) -> np.ndarray:
    """Stage 3, in place: in ``x (..., R, S)``, keys ``j >= length`` get ``-inf`` (clause ``lengths.index-rule``)."""
    np.copyto(x[..., length:], ops.neg_inf)
    return x


def softmax(x: np.ndarray, ops=FLOAT64, axis: int = -1, sink: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Stage 4: ``p_j = exp(x_j - m) / sum_k exp(x_k - m)`` over the entries of each row that are not ``-inf``.

    ``m`` is the row max of those entries (clause ``softmax.stable``: every exponent is ``<= 0`` and
    the largest term is exactly 1). Entries ``-inf`` get weight exactly 0 (clause
    ``mask.zero-weight``). Returns ``(p, empty)``: ``p`` is 0 on a row with no entry left, and
    ``empty`` (``x``'s shape with ``axis`` of length 1) marks those rows (clause
    ``mask.fully-masked-row``).

    With ``sink`` (one finite logit per row, broadcastable to ``empty``; clause ``sinks.formula``)
    the denominator has one more term ``exp(sink - m)``, ``m`` the max over the row's entries and
    the sink: the weights sum to less than 1, and a row with no entry has the denominator 1 and
    weights 0 (clause ``sinks.empty-row``).
    """
    p, empty, _ = softmax_with_lse(x, ops, axis, sink)
    return p, empty


def softmax_with_lse(x: np.ndarray, ops=FLOAT64, axis: int = -1,
                     sink: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stage 4 and the log of its denominator: ``(p, empty, lse)``, ``p`` and ``empty`` as :func:`softmax` gives them
    and ``lse = m + log sum_k exp(x_k - m)`` (:func:`log_sum_exp`; clause ``lse.definition``), ``-inf`` on a row
    with no entry left (clause ``lse.empty-row``); ``lse`` has ``x``'s shape with ``axis`` of length 1.

    ``total`` is the softmax denominator, shared by the weights and the lse: a term that joins it (an attention
    sink's ``exp(sink - m)``) changes both here and nowhere else.
    """
    kept = np.asarray(x != ops.neg_inf, dtype=bool)
    empty = ~np.any(kept, axis=axis, keepdims=True)
    row_max = np.max(np.where(kept, x, ops.neg_inf), axis=axis, keepdims=True, initial=ops.neg_inf)
    if sink is None:
        shift = np.where(empty, 0, row_max)
    else:
        shift = np.maximum(row_max, sink)  # finite on every row: the sink is
    with np.errstate(invalid="ignore", over="ignore"):
        numerator = ops.exp(np.where(kept, x - shift, ops.neg_inf))  # exactly 0 off the row, 1 at its max
    total = ops.sum(numerator, axis)  # in [1, n] on rows that keep an entry, 0 on the others
    if sink is not None:
        total = total + ops.exp(sink - shift)  # at least 1 on every row: the sink's term
    denominator = total if sink is not None else np.where(empty, 1, total)
    return numerator / denominator, empty, log_sum_exp(shift, total, ops)


def log_sum_exp(shift: np.ndarray, total: np.ndarray, ops=FLOAT64) -> np.ndarray:
    """``lse = m + log l`` from a row's shift ``m`` and its sum ``l = sum_k exp(x_k - m)`` (clause ``lse.definition``):
    the natural log of the softmax denominator, a sink's term included (so a row with no key but a sink has the
    lse ``sink``). The log of an empty sum is ``-inf`` (clause ``lse.empty-row``). The dense form passes the row
    max and the whole sum, the blocked form its running ``m`` and ``l``."""
    return shift + ops.log(total)


def weighted_sum(p: np.ndarray, value: np.ndarray, ops=FLOAT64) -> np.ndarray:
    """Stage 5: ``O = P V``, ``(..., L, Ev)`` (clause ``output.weighted-sum``)."""
    return ops.matmul(p, value)


def masked_row_weights(p: np.ndarray, empty: np.ndarray, masked_rows: str, ops=FLOAT64) -> np.ndarray:
    """The weights of the rows that keep no key under each convention: 0, NaN or ``1/S`` (clause ``mask.fully-masked-row``)."""
    if masked_rows == "nan":
        return np.where(empty, ops.nan, p)
    if masked_rows == "uniform" and p.shape[-1] > 0:
        return np.where(empty, ops.number(1) / p.shape[-1], p)
    return p


def fill_masked_rows(output: np.ndarray, empty: np.ndarray, value: np.ndarray, masked_rows: str,
                     ops=FLOAT64) -> np.ndarray:
    """Stage 6: the output rows that keep no key (``empty``, ``(..., L, 1)``) under the convention asked.

    ``zeros``: the empty weighted sum, 0. ``nan``: NaN (also when ``S = 0``). ``uniform``: the mean
    of the values over all ``S`` keys (0 when ``S = 0``). Clause ``mask.fully-masked-row``.
    """
    if masked_rows == "nan":
        return np.where(empty, ops.nan, output)
    S = value.shape[-2]
    if masked_rows == "uniform" and S > 0 and np.any(empty):
        return np.where(empty, ops.sum(value, -2) / S, output)  # (..., 1, Ev): the mean of V
    return output
