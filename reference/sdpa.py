"""Scaled dot-product attention in float64: ``softmax(Q K^T * scale + mask) V``.

The contract is that of ``torch.nn.functional.scaled_dot_product_attention`` on
NumPy arrays (clause ``attention.sdpa``), with two reference-only options:
``causal_alignment`` and ``masked_rows``. The dense form runs the stages of
:mod:`kqv.reference.stages` on whole arrays; :func:`attend` is that run, in any arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arithmetic import FLOAT64
from .blocked import blocked_attention
from .prepare import Prepared, prepare
from .stages import (add_alibi, add_biases, drop_causal, drop_keys, drop_window, fill_masked_rows, masked_row_weights,
                     scores, soft_cap, softmax, softmax_with_lse, weighted_sum)
from .validation import check_bool, check_choice, check_dropout


def masked_scores(call: Prepared, ops=FLOAT64) -> np.ndarray:
    """Stages 1 to 3 on whole arrays: the scores ``(*batch, L, S)``, capped, biased, ``-inf`` where a key is dropped."""
    x = soft_cap(scores(call.query, call.key, call.scale, ops), call.softcap, ops)  # (..., L, S), softcap.formula
    if x.shape != call.shape:
        x = np.array(np.broadcast_to(x, call.shape))  # value's or the mask's batch dims too: (*batch, L, S)
    add_alibi(x, call.alibi_slopes, call.offset)  # clause alibi.formula
    add_biases(x, call.mask)  # clause mask.additive
    drop_keys(x, call.mask, ops)  # clause mask.bool
    if call.causal_offset is not None:
        drop_causal(x, call.causal_offset, ops)  # clauses mask.causal.top-left, mask.causal.bottom-right
    if call.window is not None:
        drop_window(x, call.offset, call.window, ops)  # clause window.index-rule
    return x


def weights_of(call: Prepared, ops=FLOAT64) -> tuple[np.ndarray, np.ndarray]:
    """Stages 1 to 4 on whole arrays: ``(P (*batch, L, S), empty (*batch, L, 1))``, P 0 on empty rows."""
    # clauses softmax.stable, mask.zero-weight, sinks.formula
    return softmax(masked_scores(call, ops), ops, sink=call.row_sinks())


def attend(call: Prepared, ops=FLOAT64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every stage on whole arrays: ``(P, empty, O)``, the weights ``(*batch, L, S)`` (0 on the rows that keep
    no key, marked by ``empty``, ``(*batch, L, 1)``) and the output ``(*batch, L, Ev)``, whose rows that keep no
    key follow ``call.masked_rows`` (clause ``mask.fully-masked-row``)."""
    return attend_with_lse(call, ops)[:3]


def attend_with_lse(call: Prepared, ops=FLOAT64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`attend` and the lse of each row, ``(P, empty, O, lse)``: ``lse (*batch, L)`` is the log of the softmax
    denominator (clause ``lse.definition``), ``-inf`` on the rows that keep no key (clause ``lse.empty-row``)."""
    # clauses softmax.stable, mask.zero-weight, sinks.formula, lse.definition
    weights, empty, lse = softmax_with_lse(masked_scores(call, ops), ops, sink=call.row_sinks())
    output = weighted_sum(weights, call.value, ops)  # (*batch, L, Ev), clause output.weighted-sum
    return weights, empty, fill_masked_rows(output, empty, call.value, call.masked_rows, ops), lse[..., 0]


def attention_weights(query: Any, key: Any, attn_mask: Any = None, is_causal: bool = False, scale: Any = None, *,
                      causal_alignment: str = "top-left", masked_rows: str = "zeros",
                      enable_gqa: bool = False, window: Any = None, softcap: Any = None,
                      alibi_slopes: Any = None, kv_lengths: Any = None, sinks: Any = None) -> np.ndarray:
    """The attention weights ``P = softmax(Q K^T * scale + mask)``, float64 ``(..., L, S)``.

    ``P_ij = exp(x_ij - m_i) / sum_{k kept} exp(x_ik - m_i)`` for kept keys and exactly
    0 for masked ones, where ``x_ij = scale * sum_e q_ie k_je (+ attn_mask_ij)`` and
    ``m_i`` is the row max over kept keys. Clauses ``scores.dot-product``,
    ``scores.scale.default``, ``scores.scale.explicit``, ``mask.bool``,
    ``mask.additive``, ``mask.causal.top-left``, ``mask.causal.bottom-right``,
    ``softmax.definition``, ``softmax.stable``, ``softmax.rows-sum-to-one``,
    ``mask.zero-weight``, with ``enable_gqa`` ``gqa.head-mapping``, with ``window``
    ``window.index-rule``, with ``softcap`` ``softcap.formula``, with ``alibi_slopes``
    ``alibi.formula``, with ``sinks`` ``sinks.formula`` (the denominator has one more term
    ``exp(sink_h - m_i)``, so a row's weights sum to less than 1). A row whose
    every key is masked (clause ``mask.fully-masked-row``) is 0 (``masked_rows="zeros"``),
    NaN (``"nan"``) or ``1/S`` (``"uniform"``); with sinks it is 0 (clause ``sinks.empty-row``).
    Arguments are those of :func:`scaled_dot_product_attention`.
    """
    call = prepare(query, key, None, attn_mask, is_causal, scale, causal_alignment=causal_alignment,
                   masked_rows=masked_rows, enable_gqa=enable_gqa, window=window, softcap=softcap,
                   alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks)
    weights, empty = weights_of(call)
    return masked_row_weights(weights, empty, call.masked_rows)


METHODS = ("auto", "dense", "blocked")
# "auto" takes the blocked form from this many scores (batch * L * S) on: below it the dense form is
# as fast, above it the blocked form is faster and its memory stays O(L * E) (measured, README).
BLOCKED_FROM = 2**19


def _auto(query: Any, key: Any, value: Any, enable_gqa: bool) -> str:
    shapes = [np.shape(a) for a in (query, key, value)]
    if not all(len(shape) >= (3 if enable_gqa is True else 2) for shape in shapes):
        return "dense"  # the dense form reports the missing dims
    if enable_gqa is True:  # the key and value heads count as the query's once mapped
        shapes = [shapes[0]] + [shape[:-3] + shapes[0][-3:-2] + shape[-2:] for shape in shapes[1:]]
    try:
        batch = np.broadcast_shapes(*(shape[:-2] for shape in shapes))
    except ValueError:
        return "dense"  # the dense form reports the mismatch (or, with GQA, the head counts)
    scores_count = int(np.prod(batch, dtype=np.int64)) * shapes[0][-2] * shapes[1][-2]
    return "blocked" if scores_count >= BLOCKED_FROM else "dense"


def resolve_method(method: Any, block_size: Any, query: Any, key: Any, value: Any, enable_gqa: Any) -> str:
    """``"dense"`` or ``"blocked"``: ``method`` checked, ``"auto"`` decided by the count of scores, and a
    ``block_size`` refused unless the form is blocked."""
    method = check_choice("method", method, METHODS)
    if method == "auto":
        method = _auto(query, key, value, enable_gqa)
    if method == "dense" and block_size is not None:
        raise ValueError("block_size: only the blocked method takes a block size (method='blocked')")
    return method


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: Any = None, enable_gqa: bool = False, *,
                                 window: Any = None, softcap: Any = None, alibi_slopes: Any = None,
                                 kv_lengths: Any = None, sinks: Any = None, return_lse: bool = False,
                                 causal_alignment: str = "top-left", masked_rows: str = "zeros", method: str = "auto",
                                 block_size: tuple[int, int] | None = None,
                                 ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Attention ``O = softmax(Q K^T * scale + mask) V`` in float64 (clause ``attention.sdpa``).

    ``O_ic = sum_j P_ij v_jc`` (clause ``output.weighted-sum``) with ``P`` from
    :func:`attention_weights`.

    Shapes (clause ``attention.shape``): ``query (..., L, E)``, ``key (..., S, E)``,
    ``value (..., S, Ev)`` -> ``(..., L, Ev)``; the batch dims ``...`` (any number,
    none included) broadcast among the three.

    Dtype: any floating input (float16, bfloat16, float32, float64) is computed
    in float64 and the result is float64, whatever the input dtype; integer, bool
    and complex inputs raise :class:`TypeError`. (Clause ``attention.dtype`` asks
    an implementation under test for the query's dtype; the reference is the
    float64 yardstick, and the conformance layer casts it where it compares.)

    ``attn_mask``: bool (True = the key takes part, clause ``mask.bool``) or
    floating (added to the scores, ``-inf`` allowed, clause ``mask.additive``),
    broadcastable to ``(..., L, S)``.

    ``is_causal``: query ``i`` sees key ``j`` only if ``j <= i`` (``causal_alignment=
    "top-left"``, clause ``mask.causal.top-left``, torch's rule) or
    ``j <= i + S - L`` (``"bottom-right"``, clause ``mask.causal.bottom-right``).
    Combined with ``attn_mask``, a key takes part only if both allow it.

    ``scale``: None gives ``1/sqrt(E)`` (clause ``scores.scale.default``); an
    explicit finite value is used as is (clause ``scores.scale.explicit``).

    ``enable_gqa``: grouped-query attention (clause ``gqa.head-mapping``): query
    ``(..., H_q, L, E)``, key ``(..., H_kv, S, E)`` and value ``(..., H_kv, S, Ev)``
    with ``H_q`` a multiple of ``H_kv``; query head ``h`` reads key/value head
    ``h // (H_q // H_kv)``. The output is ``(..., H_q, L, Ev)``.

    ``window``: sliding-window (local) attention (clause ``window.index-rule``):
    None, or ``(left, right)`` with each side an integer >= 0 or None (unbounded);
    query ``i`` keeps key ``j`` iff ``i + o - left <= j <= i + o + right``, where
    ``o`` is the alignment offset of ``causal_alignment`` (0 top-left, ``S - L``
    bottom-right). ``(None, 0)`` is the causal rule (clause ``window.causal``), and
    a window of ``W`` keys ending at the query's own position is ``(W - 1, 0)``.
    With ``is_causal`` or ``attn_mask``, a key takes part only if each allows it.

    ``softcap``: logit soft-capping (clause ``softcap.formula``): None, or a
    real ``c > 0``; each score becomes ``c tanh(s q.k / c)`` after the scale and
    before any bias or mask (clause ``softcap.order``).

    ``alibi_slopes``: ALiBi linear biases (clause ``alibi.formula``): None, or
    finite slopes ``(H_q,)`` or ``(B, H_q)`` for query ``(..., H_q, L, E)``
    (per-batch slopes line up from the right: ``B`` is the axis before the heads);
    query head ``h`` adds ``-m_h |i + o - j|`` to its capped scores, ``o`` the
    alignment offset of ``causal_alignment``, with the float mask and before the
    keep-masks. :func:`kqv.reference.alibi_slopes` gives the paper's slopes.

    ``kv_lengths``: int ``(B,)``, the valid keys of each entry of the batch axis
    just before the heads (query ``(..., B, H, L, E)``): entry ``b`` keeps keys
    ``j < n_b`` only (clause ``lengths.index-rule``), and bottom-right its
    causal rule and window are aligned to its last valid key, offset
    ``n_b - L`` (clause ``lengths.offset``; negative when ``L > n_b``: the
    leading rows keep no key).

    ``sinks``: attention sinks (clause ``sinks.formula``): None, or finite
    logits ``(H_q,)`` or ``(B, H_q)`` for query ``(..., H_q, L, E)``, lined up
    like ``alibi_slopes``; the softmax of a row of query head ``h`` gets one
    more term ``exp(sink_h - m_i)`` in its denominator and none in the output,
    ``m_i`` the max over the kept scores and the sink, so its weights sum to
    ``1 - p_sink`` (clause ``sinks.mass``) and a row that keeps no key is 0
    whatever ``masked_rows`` (clause ``sinks.empty-row``).

    ``return_lse``: with True the call returns ``(output, lse)``, ``lse`` float64
    ``(..., L)`` (the output's batch dims and ``L``): ``lse_i = m_i + log sum_j
    exp(x_ij - m_i)``, the natural log of row ``i``'s softmax denominator over its
    kept keys and its sink (clause ``lse.definition``); ``-inf`` for a row that
    keeps no key whatever ``masked_rows`` says (clause ``lse.empty-row``), or the
    sink when there is one.

    ``dropout_p`` must be 0: the reference is deterministic.

    ``masked_rows``: the output of a row whose every key is masked (clause
    ``mask.fully-masked-row``): ``"zeros"``, ``"nan"``, or ``"uniform"`` (the mean
    of ``value`` over all S keys). With ``S = 0`` every row is such a row; the
    empty sum makes it 0 except under ``"nan"``.

    The softmax subtracts the row max over kept keys (clause ``softmax.stable``),
    so finite scores of any magnitude neither overflow nor give ``0/0`` on rows
    that keep a key, and masked keys get weight exactly 0 (clause
    ``mask.zero-weight``).

    ``method``: ``"dense"`` forms the ``(..., L, S)`` weights; ``"blocked"``
    (:func:`kqv.reference.blocked.blocked_attention`) walks blocks of keys with an
    online softmax (clause ``softmax.online``) in memory ``O(L * E)``, on every
    core, with ``block_size = (query rows, keys)``; ``"auto"`` (the default) takes
    the blocked form from ``2**19`` scores (batch x L x S) on. The two agree to
    float64 rounding.
    """
    check_dropout(dropout_p)
    return_lse = check_bool("return_lse", return_lse)
    if resolve_method(method, block_size, query, key, value, enable_gqa) == "blocked":
        return blocked_attention(query, key, value, attn_mask, is_causal, scale, causal_alignment=causal_alignment,
                                 masked_rows=masked_rows, block_size=block_size, enable_gqa=enable_gqa, window=window,
                                 softcap=softcap, alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks,
                                 return_lse=return_lse)
    call = prepare(query, key, value, attn_mask, is_causal, scale, causal_alignment=causal_alignment,
                   masked_rows=masked_rows, enable_gqa=enable_gqa, window=window, softcap=softcap,
                   alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks)
    _, _, output, lse = attend_with_lse(call)
    return (output, lse) if return_lse else output
