"""Scaled dot-product attention in float64, blocked, with an online softmax (clause ``softmax.online``).

The dense form builds the whole ``(L, S)`` matrix of scores; this one never holds more than one
``(block_queries, block_keys)`` block of it. For each block of query rows it walks the key blocks
keeping, per row, the running maximum ``m``, the running sum ``l`` of ``exp(x - m)`` and the
running output ``o``; a new block with scores ``x`` updates them as

    m' = max(m, max_j x_j)
    l' = l exp(m - m') + sum_j exp(x_j - m')
    o' = o exp(m - m') + sum_j exp(x_j - m') v_j

and the row's output is ``o / l``, the same number as ``softmax(x) V`` (clause ``softmax.online``).
Memory grows with ``L * E`` (the output and one block per worker), not ``L * S``: the causal mask
is computed block by block and key blocks a causal row cannot see are skipped.

Work items (a batch entry and a block of query rows) run on ``workers`` threads; each item is
computed the same way whichever thread runs it, so the result does not depend on the thread
count, bit for bit. While they run, BLAS is limited to one thread per worker (``threadpoolctl``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .validation import (CAUSAL_ALIGNMENTS, MASKED_ROWS, as_float64, as_mask, check_attention_shapes, check_bool,
                         check_choice, check_count, check_scale)

DEFAULT_BLOCK = (256, 1024)  # (query rows, keys) per block


def _check_block(block_size: Any) -> tuple[int, int]:
    if block_size is None:
        return DEFAULT_BLOCK
    if not isinstance(block_size, (tuple, list)) or len(block_size) != 2:
        raise ValueError(f"block_size: expected a pair (query rows, keys) of integers >= 1, got {block_size!r}")
    return check_count("block_size[0]", block_size[0], 1), check_count("block_size[1]", block_size[1], 1)


def _rows(query, key, value, mask, rows, offset, block_keys):
    """``(o, l)`` of the query rows ``rows = (i0, i1)`` of one batch entry: the online softmax over key blocks.

    ``query`` is already scaled, ``(i1 - i0, E)``; ``mask`` is the entry's ``(L, S)`` mask (bool
    keep-mask or float64 additive) or None; ``offset`` is None without ``is_causal``, else the
    causal offset (key j is kept for row i iff ``j <= i + offset``).
    """
    i0, i1 = rows
    S, Ev = key.shape[0], value.shape[1]
    m = np.full((i1 - i0, 1), -np.inf)  # running max over the kept scores
    l = np.zeros((i1 - i0, 1))  # running sum of exp(x - m)
    o = np.zeros((i1 - i0, Ev))  # running sum of exp(x - m) v
    last = S if offset is None else min(S, max(0, i1 + offset))  # keys a causal row of the block can see
    for j0 in range(0, last, block_keys):
        j1 = min(j0 + block_keys, last)
        x = query @ key[j0:j1].T  # (rows, keys), clause scores.dot-product
        keep = None
        if mask is not None:
            block = mask[i0:i1, j0:j1]
            if block.dtype == np.bool_:
                keep = block
            else:
                x += block  # clause mask.additive; -inf entries make their scores -inf
        if offset is not None and j1 - 1 > i0 + offset:
            causal = np.arange(j0, j1)[None, :] <= np.arange(i0, i1)[:, None] + offset  # (rows, keys)
            keep = causal if keep is None else keep & causal
        if keep is not None:
            np.putmask(x, ~keep, -np.inf)  # clause mask.bool: a masked score is -inf
        top = np.maximum(m, x.max(axis=-1, keepdims=True))  # m'
        shift = np.where(np.isfinite(top), top, 0.0)
        rescale = np.exp(m - shift)  # exp(m - m'); 0 while nothing was kept
        np.subtract(x, shift, out=x)
        np.exp(x, out=x)  # exp(x - m'), exactly 0 on masked keys (clause mask.zero-weight)
        l = l * rescale + x.sum(axis=-1, keepdims=True)
        o = o * rescale + x @ value[j0:j1]
        m = top
    return o, l


def blocked_attention(query: Any, key: Any, value: Any, attn_mask: Any = None, is_causal: bool = False,
                      scale: Any = None, *, causal_alignment: str = "top-left", masked_rows: str = "zeros",
                      block_size: tuple[int, int] | None = None, workers: int | None = None) -> np.ndarray:
    """``softmax(Q K^T * scale + mask) V`` in float64 by blocks (clauses ``attention.sdpa``, ``softmax.online``).

    Arguments, shapes, conventions and errors are those of
    :func:`kqv.reference.scaled_dot_product_attention`. ``block_size`` is ``(query rows, keys)`` per
    block (default ``(256, 1024)``); ``workers`` the number of threads (default: the CPU count, at
    most 8). Peak memory beyond the inputs and output: ``workers`` blocks of scores.
    """
    check_choice("masked_rows", masked_rows, MASKED_ROWS)
    causal_alignment = check_choice("causal_alignment", causal_alignment, CAUSAL_ALIGNMENTS)
    is_causal = check_bool("is_causal", is_causal)
    block_queries, block_keys = _check_block(block_size)
    workers = min(os.cpu_count() or 1, 8) if workers is None else check_count("workers", workers, 1)
    query, key, value = as_float64("query", query), as_float64("key", key), as_float64("value", value)
    batch = check_attention_shapes(query, key, value)
    (L, E), S, Ev = query.shape[-2:], key.shape[-2], value.shape[-1]
    if scale is None:
        if E == 0:
            raise ValueError(f"scale: the default 1/sqrt(E) is undefined for E=0 (query shape {query.shape}); "
                             "pass an explicit scale")
        scale = 1.0 / np.sqrt(E)  # clause scores.scale.default
    else:
        scale = check_scale(scale)  # clause scores.scale.explicit
    mask = None if attn_mask is None else np.broadcast_to(as_mask(attn_mask, batch + (L, S)), batch + (L, S))
    count = int(np.prod(batch, dtype=np.int64))
    queries = np.broadcast_to(query, batch + (L, E)).reshape(count, L, E) * scale  # (N, L, E), pre-scaled
    keys = np.broadcast_to(key, batch + (S, E)).reshape(count, S, E)  # (N, S, E)
    values = np.broadcast_to(value, batch + (S, Ev)).reshape(count, S, Ev)  # (N, S, Ev)
    offset = None if not is_causal else (0 if causal_alignment == "top-left" else S - L)
    output = np.empty((count, L, Ev))
    empty = np.zeros((count, L), dtype=bool)

    def item(n: int, i0: int, i1: int) -> None:
        entry_mask = None if mask is None else mask[np.unravel_index(n, batch)] if batch else mask
        o, l = _rows(queries[n, i0:i1], keys[n], values[n], entry_mask, (i0, i1), offset, block_keys)
        kept = l[:, 0] > 0
        output[n, i0:i1] = np.divide(o, l, out=np.zeros_like(o), where=kept[:, None])  # clause softmax.definition
        empty[n, i0:i1] = ~kept

    items = [(n, i0, min(i0 + block_queries, L)) for n in range(count) for i0 in range(0, L, block_queries)]
    if workers > 1 and len(items) > 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda args: item(*args), items))
    else:
        for args in items:
            item(*args)
    if empty.any():  # clause mask.fully-masked-row
        if masked_rows == "nan":
            output[empty] = np.nan
        elif masked_rows == "uniform" and S > 0:
            means = values.mean(axis=1)  # (N, Ev)
            output[empty] = np.broadcast_to(means[:, None, :], output.shape)[empty]
    return output.reshape(batch + (L, Ev))
