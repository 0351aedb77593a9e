"""The stages of the backward pass that every form shares: what is not the chain rule through ``A``, ``P`` and ``O``.

The dense backward (:mod:`kqv.reference.backward`), the blocked one (:mod:`kqv.reference.blocked_backward`) and
the oracle's (:func:`kqv.reference.oracle.oracle_sdpa_backward`) differ in how they walk the scores; around that
walk they share, in any arithmetic (:mod:`kqv.reference.arithmetic`):

- the slope of the soft cap, ``d(c tanh(a / c)) / da = 1 - tanh^2(a / c)`` (:func:`cap_slope`; ``softcap.formula``);
- the rows that keep no key under each convention (:func:`masked_row_gradients`; ``gradient.masked-row``);
- the gradient of the sinks (:func:`sink_gradient`; ``sinks.formula``, ``gradient.scores``);
- the way back to the inputs as given: summed over the batch dims an input was broadcast along and over the
  query heads of a group (:func:`input_gradients`; ``gqa.head-mapping``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .arithmetic import FLOAT64
from .prepare import Prepared


class Gradients(NamedTuple):
    """The gradients of a loss with respect to the inputs of attention, given ``dO``, its gradient with respect
    to the output: float64 (or mpmath numbers), each of the shape of its input as given.

    ``query`` is ``dQ``, ``key`` ``dK``, ``value`` ``dV`` and ``sinks`` the gradient of the sink logits, None
    when the call has no sinks.
    """

    query: np.ndarray
    key: np.ndarray
    value: np.ndarray
    sinks: np.ndarray | None = None


def cap_slope(raw: np.ndarray, cap: Any, ops=FLOAT64) -> np.ndarray:
    """``1 - tanh^2(a / c)``: the derivative of the capped score ``c tanh(a / c)`` by the score ``a = s q.k`` before
    the cap (clause ``softcap.formula``); ``dA`` of the capped scores times it is ``dA`` of ``a``."""
    t = ops.tanh(raw / cap)
    return 1 - t * t


def masked_row_gradients(d_query: np.ndarray, d_value: np.ndarray, empty: np.ndarray, grad_output: np.ndarray,
                         masked_rows: str, ops=FLOAT64) -> tuple[np.ndarray, np.ndarray]:
    """Stage 6 backward: ``(dQ, dV)`` with the rows that keep no key (``empty``, ``(*batch, L, 1)``) under the
    convention asked (clauses ``mask.fully-masked-row``, ``gradient.masked-row``).

    Their weights are 0, so the chain rule gives them ``dA = 0``: nothing in ``dQ``, ``dK`` or ``dV``. That is the
    gradient of ``zeros`` (the row is the constant 0). ``uniform``: the row is the mean of the ``S`` values, so each
    value row also gets ``dO_i / S`` from each such row ``i``. ``nan``: the row is NaN whatever the inputs, and its
    ``dQ`` row is NaN to say so; ``dK`` and ``dV`` stay as the other rows make them.
    """
    if masked_rows == "nan":
        d_query = np.where(empty, ops.nan, d_query)  # (*batch, L, E)
    S = d_value.shape[-2]
    if masked_rows == "uniform" and S > 0:
        from_empty = ops.sum(np.where(empty, grad_output, ops.number(0)), -2)  # (*batch, 1, Ev): sum_i dO_i, i empty
        d_value = d_value + from_empty / S  # (*batch, S, Ev)
    return d_query, d_value


def sink_gradient(row_sinks: np.ndarray, lse: np.ndarray, row_sum: np.ndarray, ops=FLOAT64) -> np.ndarray:
    """``dsink = -sum_i p_sink_i D_i`` of each entry, ``(*batch,)``: ``p_sink_i = exp(sink - lse_i)`` is the
    sink's share of row ``i``'s denominator (clause ``sinks.formula``) and ``D_i = rowsum(dP * P)_i =
    rowsum(dO * O)_i`` (clause ``gradient.scores``), as the softmax Jacobian gives a logit of the
    denominator that has no output of its own.

    ``row_sinks`` ``(..., H_q, 1, 1)``, ``lse`` and ``row_sum`` ``(*batch, L, 1)``.
    """
    share = ops.exp(row_sinks - lse)  # (*batch, L, 1): p_sink of each row
    return -ops.sum(share * row_sum, -2)[..., 0, 0]  # (*batch,)


def reduce_to(gradient: np.ndarray, shape: tuple[int, ...], ops=FLOAT64) -> np.ndarray:
    """The gradient of an input of shape ``shape`` that the call broadcast to the gradient's shape: summed over the
    leading dims broadcasting added and over the dims it stretched from 1."""
    for _ in range(gradient.ndim - len(shape)):
        gradient = ops.sum(gradient, 0)[0]  # (...): one leading dim fewer
    for axis, size in enumerate(shape):
        if size == 1 and gradient.shape[axis] != 1:
            gradient = ops.sum(gradient, axis)  # that dim back to 1
    return gradient


def fold_heads(gradient: np.ndarray, kv_heads: int, ops=FLOAT64) -> np.ndarray:
    """``(..., H_q, n, d) -> (..., H_kv, n, d)``: the gradient summed over the ``G = H_q / H_kv`` query heads that
    read each key/value head, heads ``h G .. h G + G - 1`` (clause ``gqa.head-mapping``)."""
    *lead, heads, n, d = gradient.shape
    grouped = gradient.reshape(*lead, kv_heads, heads // kv_heads, n, d)  # (..., H_kv, G, n, d)
    return ops.sum(grouped, -3)[..., 0, :, :]  # (..., H_kv, n, d)


def input_gradients(call: Prepared, key_shape: tuple[int, ...], value_shape: tuple[int, ...], d_query: np.ndarray,
                    d_key: np.ndarray, d_value: np.ndarray, d_sinks: np.ndarray | None, ops=FLOAT64) -> Gradients:
    """The :class:`Gradients` of the inputs as given, from those of the call's broadcast arrays: ``dQ (*batch, L, E)``,
    ``dK (*batch, S, E)``, ``dV (*batch, S, Ev)`` and ``dsink (*batch,)`` or None.

    ``key_shape`` and ``value_shape`` are the shapes of the key and value given, before their heads were mapped to
    the query's (stage 0, clause ``gqa.head-mapping``): the mapped heads are folded back onto them.
    """
    d_key = reduce_to(d_key, call.key.shape, ops)  # (..., H_q, S, E) with GQA, else key's shape
    d_value = reduce_to(d_value, call.value.shape, ops)  # (..., H_q, S, Ev) with GQA, else value's shape
    if tuple(call.key.shape) != tuple(key_shape):  # GQA: the query heads of each group onto their key/value head
        d_key, d_value = fold_heads(d_key, key_shape[-3], ops), fold_heads(d_value, value_shape[-3], ops)
    d_sinks = None if d_sinks is None else reduce_to(d_sinks, call.sinks.shape, ops)  # (H_q,) or (B, H_q)
    return Gradients(reduce_to(d_query, call.query.shape, ops), d_key, d_value, d_sinks)
