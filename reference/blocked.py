"""Scaled dot-product attention in float64, blocked, with an online softmax (clause ``softmax.online``).

The dense form builds the whole ``(L, S)`` matrix of scores; this one never holds more than one
``(block_queries, block_keys)`` block of it per thread. For each block of query rows it walks the
key blocks keeping, per row, the running maximum ``m``, the running sum ``l`` of ``exp(x - m)`` and
the running output ``o``; a new block with scores ``x`` updates them as

    m' = max(m, max_j x_j)
    l' = l exp(m - m') + sum_j exp(x_j - m')
    o' = o exp(m - m') + sum_j exp(x_j - m') v_j

and the row's output is ``o / l``, the same number as ``softmax(x) V`` (clause ``softmax.online``);
its lse is ``m + log l`` (clause ``lse.definition``).
With a sink (clause ``sinks.formula``) the walk starts from it instead of from nothing: ``m = sink``,
``l = exp(sink - m) = 1``, ``o = 0``, so the sink enters the running max and sum once per row (and the
lse), and a row that keeps no key ends at ``0 / 1 = 0`` (clause ``sinks.empty-row``) with the lse ``sink``.
Memory grows with ``L * E`` (the output and one block per thread), not ``L * S``: the masks are
applied block by block. Under ``is_causal`` the key blocks a block of rows cannot see are skipped,
and along the diagonal the keys go in narrow blocks that only the rows which see them compute, so
that almost no score above the diagonal is ever formed.

Work items (a block of query rows of one batch entry, or of several small entries at once) run on
``workers`` threads, and BLAS is held to one thread per worker meanwhile (``threadpoolctl``): NumPy
releases the GIL in its matrix products and ``exp``. Each item is computed the same way whichever
thread runs it, so the result does not depend on the thread count, bit for bit.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from .prepare import Prepared, prepare
from .stages import (add_alibi, add_biases, drop_causal, drop_keys, drop_window, fill_masked_rows, log_sum_exp, scores,
                     soft_cap)
from .validation import check_bool, check_count

DEFAULT_BLOCK = (128, 1024)  # (query rows, keys) per block
DIAGONAL_KEYS = 64  # keys per block along a causal diagonal (0: none, the diagonal is masked in the blocks)


def _check_block(block_size: Any) -> tuple[int, int]:
    if block_size is None:
        return DEFAULT_BLOCK
    if not isinstance(block_size, (tuple, list)) or len(block_size) != 2:
        raise ValueError(f"block_size: expected a pair (query rows, keys) of integers >= 1, got {block_size!r}")
    return check_count("block_size[0]", block_size[0], 1), check_count("block_size[1]", block_size[1], 1)


def key_blocks(i0: int, i1: int, S: int, offset: int | None, block_keys: int,
                diagonal: int) -> Iterator[tuple[int, int, int]]:
    """The key blocks ``(j0, j1, r)`` that the query rows ``i0 .. i1 - 1`` see, in order.

    Rows ``i0 + r .. i1 - 1`` take part in the block of keys ``j0 .. j1 - 1``. Without
    ``is_causal`` (``offset`` None) every row sees every key. With it, row ``i`` sees key ``j`` iff
    ``j <= i + offset`` (clauses ``mask.causal.top-left``, ``mask.causal.bottom-right``), so the
    keys past ``i1 - 1 + offset`` are skipped; the keys up to ``i0 + offset`` are seen by every
    row, and with ``diagonal > 0`` the keys past them go in blocks of ``diagonal`` keys, a block
    starting at ``j0`` taken by the rows from ``j0 - offset`` on (the first row that sees it).
    """
    seen_by_last = S if offset is None else min(S, max(0, i1 + offset))
    seen_by_all = seen_by_last if offset is None or not diagonal else min(S, max(0, i0 + offset + 1))
    for j0 in range(0, seen_by_all, block_keys):
        yield j0, min(j0 + block_keys, seen_by_all), 0
    for j0 in range(seen_by_all, seen_by_last, diagonal or 1):
        yield j0, min(j0 + diagonal, seen_by_last), j0 - offset - i0


def tile_scores(query: np.ndarray, key: np.ndarray, mask: np.ndarray | None, call: Prepared, row: int, j0: int,
                slopes: np.ndarray | None) -> np.ndarray:
    """Stages 1 to 3 on one tile: the scores ``(n, R, w)`` of query rows ``row .. row + R - 1`` (``query``,
    ``(n, R, E)``) and keys ``j0 .. j0 + w - 1`` (``key``, ``(n, w, E)``) of ``n`` batch entries, capped, biased,
    ``-inf`` where a key is dropped.

    ``mask`` is the tile of the mask (bool keep-mask or float64 additive), ``(n or 1, R, w)``, or None; ``call``
    gives the scale, the causal offset (key ``j`` kept for row ``i`` iff ``j <= i + offset``), the window around
    ``i + o`` with ``o`` the alignment offset (clause ``window.index-rule``) and the cap (clause
    ``softcap.formula``); ``slopes`` is None or the ALiBi slope of each entry, ``(n,)`` (clause ``alibi.formula``).
    """
    x = soft_cap(scores(query, key, call.scale), call.softcap)  # (n, R, w), clauses scores.dot-product, softcap.formula
    add_alibi(x, slopes, row + call.offset - j0)  # clause alibi.formula
    add_biases(x, mask)  # clause mask.additive; its -inf entries make their scores -inf
    drop_keys(x, mask)  # clause mask.bool: a masked score is -inf
    if call.causal_offset is not None:
        drop_causal(x, row + call.causal_offset - j0)  # row t of the tile sees keys c <= t + (row + offset - j0)
    if call.window is not None:
        drop_window(x, row + call.offset - j0, call.window)  # clause window.index-rule
    return x


def _attend(query: np.ndarray, key: np.ndarray, value: np.ndarray, mask: np.ndarray | None, call: Prepared, i0: int,
            block_keys: int, diagonal: int, slopes: np.ndarray | None = None,
            sinks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(o, l, m)`` of the online softmax of one item: ``(n, R, Ev)``, ``(n, R, 1)``, ``(n, R, 1)``.

    ``query`` is the item's ``R`` query rows ``i0 .. i0 + R - 1`` of ``n`` batch entries,
    ``(n, R, E)``; ``key`` ``(n, S, E)`` and ``value`` ``(n, S, Ev)`` are those entries' (heads
    already mapped); ``mask`` is their rows of the mask (bool keep-mask or float64 additive),
    ``(n or 1, R, S)``, or None; ``call`` gives the rules of :func:`tile_scores`; ``slopes`` None or the
    ALiBi slope of each entry, ``(n,)`` (clause ``alibi.formula``); ``sinks`` None or the sink of each
    entry, ``(n,)`` (clause ``sinks.formula``). Each key block goes through the stages of
    :mod:`kqv.reference.stages` (:func:`tile_scores`) before the online update.
    """
    n, R = query.shape[:2]
    m = np.full((n, R, 1), -np.inf)  # running max of the kept scores (and the sink)
    l = np.zeros((n, R, 1))  # running sum of exp(x - m)  # noqa: E741 - the paper's name
    o = np.zeros((n, R, value.shape[-1]))  # running sum of exp(x - m) v
    if sinks is not None:  # the sink is the first term: m = sink, l = exp(sink - m) = 1
        m[...] = sinks[:, None, None]  # (n, 1, 1) -> (n, R, 1)
        l[...] = 1.0
    blocks = key_blocks(i0, i0 + R, key.shape[1], call.causal_offset, block_keys, diagonal)
    for number, (j0, j1, r) in enumerate(blocks):
        x = tile_scores(query[:, r:], key[:, j0:j1], None if mask is None else mask[:, r:, j0:j1], call, i0 + r, j0,
                        slopes)  # (n, R - r, j1 - j0)
        _update(x, value[:, j0:j1], m[:, r:], l[:, r:], o[:, r:], first=number == 0 and sinks is None)  # its rows
    return o, l, m


def _rescaling(m: np.ndarray, m_new: np.ndarray) -> np.ndarray:
    """``exp(m - m')``: what the running sums shifted by ``m`` are multiplied by to be shifted by ``m'``."""
    return np.exp(m - m_new)


def _update(x: np.ndarray, value: np.ndarray, m: np.ndarray, l: np.ndarray, o: np.ndarray,  # noqa: E741
            first: bool) -> None:
    """One step of clause ``softmax.online``, in place: the scores ``x`` ``(n, R, w)`` of a key block
    (masked ones ``-inf``; overwritten) with its values ``(n, w, Ev)`` update ``m``, ``l`` ``(n, R, 1)``
    and ``o`` ``(n, R, Ev)`` to ``m' = max(m, max_j x_j)``, ``l' = l exp(m - m') + sum_j exp(x_j - m')``
    and ``o' = o exp(m - m') + sum_j exp(x_j - m') v_j``; ``first``: nothing was added yet (``l = o = 0``).
    """
    m_new = x.max(axis=-1, keepdims=True) if first else np.maximum(m, x.max(axis=-1, keepdims=True))
    shift = np.where(m_new == -np.inf, 0.0, m_new)  # a row with nothing kept yet stays at l = 0, o = 0
    np.subtract(x, shift, out=x)
    np.exp(x, out=x)  # exp(x - m'), exactly 0 on masked keys (clause mask.zero-weight)
    if first:
        np.sum(x, axis=-1, keepdims=True, out=l)
        np.matmul(x, value, out=o)  # clause output.weighted-sum
    else:
        rescale = _rescaling(m, shift)  # 0 while nothing was kept
        l *= rescale
        l += x.sum(axis=-1, keepdims=True)
        o *= rescale
        o += x @ value
    m[...] = m_new


class _Pool:
    """One thread pool for the process, made on first use and again after a ``fork``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._size = 0
        self._pid = 0

    def get(self, size: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid() or self._size < size:
                self._executor = ThreadPoolExecutor(size, thread_name_prefix="kqv-blocked")
                self._size, self._pid = size, os.getpid()
            return self._executor


_POOL = _Pool()
MAX_WORKERS = 8


def default_workers() -> int:
    """The threads of a call that names none: ``KQV_THREADS`` when set (a process's share of the cores under
    ``kqv check --jobs``), else the cores this process may run on; at most ``MAX_WORKERS`` (8)."""
    text = os.environ.get("KQV_THREADS", "")
    if text.isdigit() and int(text) >= 1:
        return min(int(text), MAX_WORKERS)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return min(cores, MAX_WORKERS)


@functools.lru_cache(maxsize=None)
def _blas_controller() -> Any:
    """The ``threadpoolctl`` controller of the BLAS libraries loaded (made once: 0.2 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _entries(array: np.ndarray, batch: tuple[int, ...], n0: int, n1: int, rows: slice = slice(None)) -> np.ndarray:
    """Batch entries ``n0 .. n1 - 1`` (flat, C order) of ``array`` ``(*batch, rows, last)``, their rows ``rows``:
    ``(n1 - n0, rows, last)``; a view for one entry, a copy of just those entries otherwise."""
    if n1 - n0 == 1:
        return array[np.unravel_index(n0, batch) + (rows,)][None]  # (1, rows, last)
    return array[np.unravel_index(np.arange(n0, n1), batch) + (rows,)]  # (n, rows, last)


def blocked_attention(query: Any, key: Any, value: Any, attn_mask: Any = None, is_causal: bool = False,
                      scale: Any = None, *, causal_alignment: str = "top-left", masked_rows: str = "zeros",
                      block_size: tuple[int, int] | None = None, workers: int | None = None,
                      enable_gqa: bool = False, window: Any = None, softcap: Any = None,
                      alibi_slopes: Any = None, kv_lengths: Any = None, sinks: Any = None,
                      return_lse: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``softmax(Q K^T * scale + mask) V`` in float64 by blocks (clauses ``attention.sdpa``, ``softmax.online``).

    Arguments, shapes, conventions and errors are those of
    :func:`kqv.reference.scaled_dot_product_attention`; the result agrees with its dense form to
    float64 rounding. ``block_size`` is ``(query rows, keys)`` per block (default ``(128, 1024)``;
    along a causal diagonal the key blocks are 64 wide); ``workers`` the number of threads
    (default: :func:`default_workers`). Peak memory beyond the inputs and output: one block of
    scores per worker, and for small batch entries grouped into one item, their keys and values.

    The running sums are not normalized until the end: ``l <= S`` and ``|o| <= S max|v|``, so
    values within a factor ``S`` of the largest float64 can overflow where the dense form does not.
    With ``return_lse`` the lse of each row is ``m + log l`` from the same running sums (clause ``lse.definition``).
    """
    return_lse = check_bool("return_lse", return_lse)
    call = prepare(query, key, value, attn_mask, is_causal, scale, causal_alignment=causal_alignment,
                   masked_rows=masked_rows, enable_gqa=enable_gqa, window=window, softcap=softcap,
                   alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks)
    output, lse = attend_blocked(tiling(call, block_size, workers))  # (N, L, Ev), (N, L, 1)
    output = output.reshape(call.batch + (call.L, call.Ev))  # (*batch, L, Ev)
    return (output, lse.reshape(call.batch + (call.L,))) if return_lse else output  # lse (*batch, L)


@dataclass(frozen=True)
class Tiling:
    """A call laid out for the blocked forms: the batch flattened to ``count`` entries (C order), the inputs
    broadcast to the batch (views), the block sizes and the threads.

    ``query (*batch, L, E)``, ``key (*batch, S, E)``, ``value (*batch, S, Ev)``, ``mask (*batch, L, S)`` or None;
    ``slopes`` and ``sinks`` ``(count,)`` or None, one per flat entry.
    """

    call: Prepared
    query: np.ndarray
    key: np.ndarray
    value: np.ndarray
    mask: np.ndarray | None
    slopes: np.ndarray | None
    sinks: np.ndarray | None
    block_queries: int
    block_keys: int
    diagonal: int
    workers: int

    @property
    def count(self) -> int:
        return int(np.prod(self.call.batch, dtype=np.int64))

    def entries(self, array: np.ndarray | None, n0: int, n1: int, rows: slice = slice(None)) -> np.ndarray | None:
        """Flat entries ``n0 .. n1 - 1`` of one of the arrays, their rows ``rows`` (``_entries``); None stays
        None."""
        return None if array is None else _entries(array, self.call.batch, n0, n1, rows)

    def per_item(self) -> int:
        """Batch entries per item: small entries go several to an item, up to one block of scores, leaving an item
        per worker."""
        L, S = self.call.L, self.call.S
        fits = self.block_queries * self.block_keys // max(1, min(L, self.block_queries) * min(S, self.block_keys))
        return max(1, min(fits, -(-self.count // self.workers)))


def tiling(call: Prepared, block_size: Any = None, workers: Any = None) -> Tiling:
    """The :class:`Tiling` of ``call``, with ``block_size`` and ``workers`` checked (defaults when None)."""
    batch = call.batch
    block_queries, block_keys = _check_block(block_size)
    workers = default_workers() if workers is None else check_count("workers", workers, 1)
    query, key, value = (np.broadcast_to(a, batch + a.shape[-2:]) for a in (call.query, call.key, call.value))
    mask = None if call.mask is None else np.broadcast_to(call.mask, call.shape)  # (*batch, L, S)
    slopes = None if call.alibi_slopes is None else np.broadcast_to(call.alibi_slopes, batch).reshape(-1)  # (N,)
    sinks = None if call.sinks is None else np.broadcast_to(call.sinks, batch).reshape(-1)  # (N,)
    return Tiling(call, query, key, value, mask, slopes, sinks, block_queries, block_keys,
                  min(DIAGONAL_KEYS, block_keys), workers)


def run_items(run: Callable[[Any], None], items: list, workers: int) -> None:
    """``run`` on each item, on ``workers`` threads with one BLAS thread each, or in order on this one."""
    if workers > 1 and len(items) > 1:
        with _blas_controller().limit(limits=1, user_api="blas"):  # one BLAS thread per worker
            list(_POOL.get(workers).map(run, items))
    else:
        for item in items:
            run(item)


def attend_blocked(tiles: Tiling) -> tuple[np.ndarray, np.ndarray]:
    """The blocked form of a laid-out call: ``(output (N, L, Ev), lse (N, L, 1))``, the batch flattened
    (clauses ``softmax.online``, ``lse.definition``)."""
    call = tiles.call
    L, Ev, count = call.L, call.Ev, tiles.count
    output = np.empty((count, L, Ev))  # (N, L, Ev), the batch flattened
    lse = np.empty((count, L, 1))  # (N, L, 1)
    group, block_queries = tiles.per_item(), tiles.block_queries
    items = [(n0, min(n0 + group, count), i0, min(i0 + block_queries, L))
             for n0 in range(0, count, group) for i0 in range(0, L, block_queries)]
    if call.causal_offset is not None:
        items.sort(key=lambda item: -item[3])  # the rows that see the most keys first, for an even split

    def run(item: tuple[int, int, int, int]) -> None:
        n0, n1, i0, i1 = item
        rows = slice(i0, i1)
        values = tiles.entries(tiles.value, n0, n1)  # (n, S, Ev)
        with np.errstate(invalid="ignore", over="ignore"):
            o, l, m = _attend(tiles.entries(tiles.query, n0, n1, rows), tiles.entries(tiles.key, n0, n1), values,
                              tiles.entries(tiles.mask, n0, n1, rows), call, i0, tiles.block_keys, tiles.diagonal,
                              None if tiles.slopes is None else tiles.slopes[n0:n1],
                              None if tiles.sinks is None else tiles.sinks[n0:n1])  # noqa: E741
        result = output[n0:n1, i0:i1]  # (n, R, Ev)
        empty = m == -np.inf  # (n, R, 1): rows that keep no key, clause mask.fully-masked-row
        lse[n0:n1, i0:i1] = log_sum_exp(np.where(empty, 0.0, m), l)  # -inf where l = 0, clause lse.empty-row
        np.divide(o, l, out=result, where=~empty)  # clause softmax.definition
        if empty.any():
            np.copyto(result, 0.0, where=empty)  # the empty weighted sum
            result[...] = fill_masked_rows(result, empty, values, call.masked_rows)

    run_items(run, items, tiles.workers)
    return output, lse
