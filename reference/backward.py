"""The analytic backward of scaled dot-product attention in float64: ``(dQ, dK, dV)`` from ``dO`` (``gradient.*``).

With the scores ``A`` (``s Q K^T``, capped, plus the biases, ``-inf`` where a key is dropped), the weights
``P = softmax(A)`` and the output ``O = P V``, the upstream gradient ``dO`` gives

- ``dV = P^T dO`` (clause ``gradient.value``) and ``dP = dO V^T`` (clause ``gradient.weights``),
- ``dA = P * (dP - D)``, ``D = rowsum(dP * P) = rowsum(dO * O)`` (clause ``gradient.scores``),
- ``dQ = s dA' K`` (clause ``gradient.query``) and ``dK = s dA'^T Q`` (clause ``gradient.key``), ``dA' = dA``
  times ``1 - tanh^2(s q.k / c)`` under a soft cap ``c`` (clause ``softcap.formula``), ``dA`` without one.

The biases and masks are constants and get no gradient. The dense form forms ``P`` and ``dA`` whole, ``(*batch, L,
S)``; :func:`backward` is that run, in any arithmetic, and the mpmath oracle runs it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arithmetic import FLOAT64
from .backward_stages import Gradients, cap_slope, input_gradients, masked_row_gradients, sink_gradient
from .blocked_backward import blocked_attention_backward
from .prepare import Prepared, prepare
from .sdpa import masked_scores, resolve_method
from .stages import scores, softmax_with_lse
from .validation import check_dropout, check_grad_output


def _transposed(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)  # (..., n, m) -> (..., m, n)


def backward(call: Prepared, grad_output: np.ndarray, ops=FLOAT64) -> tuple[np.ndarray, ...]:
    """Every stage backward on whole arrays: ``(dQ (*batch, L, E), dK (*batch, S, E), dV (*batch, S, Ev), dsink
    (*batch,) or None)``, the gradients of the call's broadcast arrays, from ``grad_output``, ``dO (*batch, L,
    Ev)``; :func:`~kqv.reference.backward_stages.input_gradients` takes them back to the inputs.

    Clauses ``gradient.value``, ``gradient.weights``, ``gradient.scores`` (with ``D = rowsum(dP * P)``),
    ``gradient.query``, ``gradient.key``, ``gradient.masked-row``; with sinks, ``dsink`` of
    :func:`kqv.reference.backward_stages.sink_gradient`.
    """
    weights, empty, lse = softmax_with_lse(masked_scores(call, ops), ops, sink=call.row_sinks())  # P: 0 on empty rows
    d_value = ops.matmul(_transposed(weights), grad_output)  # (*batch, S, Ev), clause gradient.value
    d_weights = ops.matmul(grad_output, _transposed(call.value))  # (*batch, L, S), clause gradient.weights
    row_sum = ops.sum(d_weights * weights, -1)  # (*batch, L, 1): D
    d_scores = weights * (d_weights - row_sum)  # (*batch, L, S), clause gradient.scores
    if call.softcap is not None:
        d_scores = d_scores * cap_slope(scores(call.query, call.key, call.scale, ops), call.softcap, ops)
    d_query = ops.matmul(d_scores * call.scale, call.key)  # (*batch, L, E), clause gradient.query
    d_key = ops.matmul(_transposed(d_scores * call.scale), call.query)  # (*batch, S, E), clause gradient.key
    d_query, d_value = masked_row_gradients(d_query, d_value, empty, grad_output, call.masked_rows, ops)
    d_sinks = None if call.sinks is None else sink_gradient(call.row_sinks(), lse, row_sum, ops)
    return d_query, d_key, d_value, d_sinks


def scaled_dot_product_attention_backward(query: Any, key: Any, value: Any, grad_output: Any, attn_mask: Any = None,
                                          dropout_p: float = 0.0, is_causal: bool = False, scale: Any = None,
                                          enable_gqa: bool = False, *, window: Any = None, softcap: Any = None,
                                          alibi_slopes: Any = None, kv_lengths: Any = None, sinks: Any = None,
                                          causal_alignment: str = "top-left", masked_rows: str = "zeros",
                                          method: str = "auto", block_size: tuple[int, int] | None = None,
                                          ) -> Gradients:
    """The gradients of attention ``O = softmax(Q K^T * scale + mask) V`` in float64, given ``grad_output = dO``.

    Returns :class:`~kqv.reference.backward_stages.Gradients` ``(query, key, value, sinks)``: ``dQ = s dA K``
    (clause ``gradient.query``), ``dK = s dA^T Q`` (clause ``gradient.key``) and ``dV = P^T dO`` (clause
    ``gradient.value``), with ``dP = dO V^T`` (clause ``gradient.weights``) and ``dA = P * (dP - rowsum(dP * P))``
    (clause ``gradient.scores``), each float64 of its input's shape: summed over the batch dims the input was
    broadcast along, and with ``enable_gqa`` over the query heads of each group (clause ``gqa.head-mapping``).
    ``sinks`` is None without sinks, else ``dsink = -sum_i p_sink_i rowsum(dO * O)_i``, of the sinks' shape.

    Arguments are those of :func:`kqv.reference.scaled_dot_product_attention` (same validation, masks and
    variants; ``return_lse`` aside) and ``grad_output``, floating, of the output's shape ``(*batch, L, Ev)``.
    ``softcap`` multiplies ``dA`` by ``1 - tanh^2(s q.k / c)``; ``window``, ``alibi_slopes``, ``kv_lengths``,
    float masks and the causal rule change ``P`` only (constants of the scores get no gradient).

    A row that keeps no key (clause ``gradient.masked-row``): ``"zeros"`` gives it no gradient at all (its
    output is the constant 0); ``"uniform"`` gives each value row ``dO_i / S`` from it and nothing to ``dQ`` or
    ``dK``; ``"nan"`` makes its ``dQ`` row NaN and adds nothing to ``dK`` or ``dV``, which stay finite.

    ``method``: ``"dense"`` forms ``P`` and ``dA`` whole; ``"blocked"``
    (:func:`kqv.reference.blocked_backward.blocked_attention_backward`) recomputes ``P`` tile by tile from the
    forward's lse, in memory ``O((L + S) E)``; ``"auto"`` as the forward decides.
    """
    check_dropout(dropout_p)
    if resolve_method(method, block_size, query, key, value, enable_gqa) == "blocked":
        return blocked_attention_backward(query, key, value, grad_output, attn_mask, is_causal, scale,
                                          causal_alignment=causal_alignment, masked_rows=masked_rows,
                                          block_size=block_size, enable_gqa=enable_gqa, window=window,
                                          softcap=softcap, alibi_slopes=alibi_slopes, kv_lengths=kv_lengths,
                                          sinks=sinks)
    call = prepare(query, key, value, attn_mask, is_causal, scale, causal_alignment=causal_alignment,
                   masked_rows=masked_rows, enable_gqa=enable_gqa, window=window, softcap=softcap,
                   alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks)
    grad_output = check_grad_output(grad_output, call.batch + (call.L, call.Ev))
    return input_gradients(call, np.shape(key), np.shape(value), *backward(call, grad_output))
