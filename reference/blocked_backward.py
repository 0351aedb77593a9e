"""The backward of scaled dot-product attention in float64, blocked: the weights recomputed tile by tile from the lse.

As flash kernels do, it keeps no ``(L, S)`` matrix from the forward pass, only the output ``O`` and the lse of
each row (clause ``lse.definition``), and per row ``D = rowsum(dO * O)``, which equals the ``rowsum(dP * P)`` of
clause ``gradient.scores``. For each tile of query rows and keys it recomputes the scores ``x`` through the same
stages as the forward (:func:`kqv.reference.blocked.tile_scores`) and the weights ``P = exp(x - lse)`` (exactly 0
on a dropped key), then adds the tile's share of each gradient:

    dV[keys] += P^T dO[rows]                  (clause gradient.value)
    dP        = dO[rows] V[keys]^T            (clause gradient.weights)
    dA        = P * (dP - D[rows])            (clause gradient.scores)
    dQ[rows] += s dA K[keys]                  (clause gradient.query)
    dK[keys] += s dA^T Q[rows]                (clause gradient.key)

with ``dA`` times ``1 - tanh^2(s q.k / c)`` under a soft cap (clause ``softcap.formula``). Memory beyond the inputs
and the gradients: one tile of scores per worker. Under ``is_causal`` the key blocks a block of rows cannot see are
skipped as in the forward. The work items are groups of batch entries, each on one thread with every row and key
of its entries, so no two threads add to the same gradient and the result does not depend on the thread count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backward_stages import Gradients, cap_slope, input_gradients, masked_row_gradients, sink_gradient
from .blocked import attend_blocked, key_blocks, run_items, tile_scores, tiling
from .prepare import prepare
from .stages import scores
from .validation import check_grad_output


def _transposed(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)  # (n, a, b) -> (n, b, a)


def blocked_attention_backward(query: Any, key: Any, value: Any, grad_output: Any, attn_mask: Any = None,
                               is_causal: bool = False, scale: Any = None, *, causal_alignment: str = "top-left",
                               masked_rows: str = "zeros", block_size: tuple[int, int] | None = None,
                               workers: int | None = None, enable_gqa: bool = False, window: Any = None,
                               softcap: Any = None, alibi_slopes: Any = None, kv_lengths: Any = None,
                               sinks: Any = None) -> Gradients:
    """The gradients of :func:`kqv.reference.blocked.blocked_attention` given ``grad_output = dO``, by tiles.

    Arguments, results, conventions and errors are those of
    :func:`kqv.reference.backward.scaled_dot_product_attention_backward`, and the result agrees with its dense
    form to float64 rounding; ``block_size`` and ``workers`` are those of the blocked forward, which runs first
    for ``O`` and the lse. ``P = exp(x - lse)`` per tile, ``D = rowsum(dO * O)`` per row (0 on a row that keeps
    no key), then the clauses ``gradient.value``, ``gradient.weights``, ``gradient.scores``, ``gradient.query``,
    ``gradient.key`` tile by tile, and ``gradient.masked-row`` for the rows that keep no key.
    """
    call = prepare(query, key, value, attn_mask, is_causal, scale, causal_alignment=causal_alignment,
                   masked_rows=masked_rows, enable_gqa=enable_gqa, window=window, softcap=softcap,
                   alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks)
    batch, L, S, E, Ev = call.batch, call.L, call.S, call.E, call.Ev
    grad_output = check_grad_output(grad_output, batch + (L, Ev))
    tiles = tiling(call, block_size, workers)
    output, lse = attend_blocked(tiles)  # (N, L, Ev), (N, L, 1)
    count = tiles.count
    d_output = grad_output.reshape(count, L, Ev)  # (N, L, Ev), the batch flattened
    empty = lse == -np.inf  # (N, L, 1): rows that keep no key (with a sink, none: its lse is finite)
    with np.errstate(invalid="ignore"):
        row_sum = np.where(empty, 0.0, np.sum(d_output * output, axis=-1, keepdims=True))  # (N, L, 1): D
    shift = np.where(empty, 0.0, lse)  # (N, L, 1): exp(x - shift) is P, 0 on a row whose keys are all dropped
    d_query, d_key, d_value = np.zeros((count, L, E)), np.zeros((count, S, E)), np.zeros((count, S, Ev))
    group = tiles.per_item()

    def run(n0: int) -> None:
        n1 = min(n0 + group, count)
        entries = slice(n0, n1)
        query_rows, keys, values = (tiles.entries(a, n0, n1) for a in (tiles.query, tiles.key, tiles.value))
        slopes = None if tiles.slopes is None else tiles.slopes[entries]
        for i0 in range(0, L, tiles.block_queries):
            i1 = min(i0 + tiles.block_queries, L)
            mask = tiles.entries(tiles.mask, n0, n1, slice(i0, i1))  # (n, R, S) or None
            for j0, j1, r in key_blocks(i0, i1, S, call.causal_offset, tiles.block_keys, tiles.diagonal):
                rows, tile = slice(i0 + r, i1), slice(j0, j1)
                x = tile_scores(query_rows[:, rows], keys[:, tile], None if mask is None else mask[:, r:, tile], call,
                                i0 + r, j0, slopes)  # (n, R - r, w)
                weights = np.exp(x - shift[entries, rows])  # (n, R - r, w): P from the lse
                upstream = d_output[entries, rows]  # (n, R - r, Ev)
                d_value[entries, tile] += _transposed(weights) @ upstream  # clause gradient.value
                d_weights = upstream @ _transposed(values[:, tile])  # (n, R - r, w), clause gradient.weights
                d_scores = weights * (d_weights - row_sum[entries, rows])  # clause gradient.scores
                if call.softcap is not None:
                    d_scores *= cap_slope(scores(query_rows[:, rows], keys[:, tile], call.scale), call.softcap)
                d_scores *= call.scale
                d_query[entries, rows] += d_scores @ keys[:, tile]  # clause gradient.query
                d_key[entries, tile] += _transposed(d_scores) @ query_rows[:, rows]  # clause gradient.key

    run_items(run, list(range(0, count, group)), tiles.workers)
    d_query, d_value = masked_row_gradients(d_query, d_value, empty, d_output, call.masked_rows)
    d_sinks = None if tiles.sinks is None else sink_gradient(tiles.sinks[:, None, None], lse, row_sum)  # (N,)
    return input_gradients(call, np.shape(key), np.shape(value), d_query.reshape(batch + (L, E)),  # (*batch, L, E)
                           d_key.reshape(batch + (S, E)), d_value.reshape(batch + (S, Ev)),  # (*batch, S, E | Ev)
                           None if d_sinks is None else d_sinks.reshape(batch))  # (*batch,)
