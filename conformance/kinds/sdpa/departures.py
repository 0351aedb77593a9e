"""Named departures of ``sdpa``: what a wrong output computes instead, for the failures at tile boundaries.

A kernel that works in tiles and gets one tile wrong gives an output that a simple model explains:
the keys past the first tile dropped, the features of Q and K past the first tile dropped, the value
features or the query rows of the last partial tile never written, each tile of keys normalised on
its own (the running max and sum not carried across tiles, clause ``softmax.online``). Each model
here is computed by the reference on the case's own inputs; when a failing output agrees with one
within the bound, the failure names it ("keys beyond 128 ignored") instead of leaving the reader
with an error ratio (clause ``attention.tile-boundaries``).
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from kqv.reference.prepare import prepare
from kqv.reference.sdpa import masked_scores

from ...compare import mismatch
from ...dtypes import as_float64
from ...profiles import LENGTH_TILES, WIDTH_TILES
from .bound import sdpa_expectation
from .case import SdpaInputs

Model = Callable[[SdpaInputs, "Judging"], Iterator[tuple[str, np.ndarray]]]


class Judging:
    """What a model needs: the precision, alignment and convention the backend is judged under."""

    def __init__(self, precision, alignment: str, masked_rows: str) -> None:
        self.precision, self.alignment, self.masked_rows = precision, alignment, masked_rows

    def expected(self, inputs: SdpaInputs) -> np.ndarray:
        return sdpa_expectation(inputs, self.precision, self.alignment, self.masked_rows).expected


def _keep_first_keys(inputs: SdpaInputs, count: int) -> SdpaInputs:
    """The same call with every key from ``count`` on masked (a bool or float mask as the case has)."""
    L, S = inputs.query.shape[-2], inputs.key.shape[-2]
    first = np.arange(S) < count  # (S,)
    mask = inputs.attn_mask
    if mask is None:
        mask = np.broadcast_to(first, (L, S)).copy()  # (L, S)
    elif mask.dtype == np.bool_:
        mask = mask & first
    else:
        mask = np.where(first, mask, np.asarray(-np.inf, dtype=mask.dtype))
    return inputs.replace(attn_mask=mask)


def keys_truncated(inputs: SdpaInputs, judging: Judging) -> Iterator[tuple[str, np.ndarray]]:
    S = inputs.key.shape[-2]
    for tile in (size for size in LENGTH_TILES if size < S):
        yield f"keys beyond {tile} ignored (keys truncated to a tile of {tile})", \
            judging.expected(_keep_first_keys(inputs, tile))


def head_dim_truncated(inputs: SdpaInputs, judging: Judging) -> Iterator[tuple[str, np.ndarray]]:
    E = inputs.query.shape[-1]
    scale = inputs.scale if inputs.scale is not None else 1.0 / np.sqrt(E)
    for tile in (size for size in WIDTH_TILES if size < E):
        cut = inputs.replace(query=np.ascontiguousarray(inputs.query[..., :tile]),
                             key=np.ascontiguousarray(inputs.key[..., :tile]), scale=scale)  # (..., n, tile)
        yield f"features of query and key beyond {tile} ignored (head dim truncated to {tile})", judging.expected(cut)


def value_features_unwritten(inputs: SdpaInputs, judging: Judging) -> Iterator[tuple[str, np.ndarray]]:
    Ev = inputs.value.shape[-1]
    expected = judging.expected(inputs)
    for tile in (size for size in WIDTH_TILES if size < Ev):
        model = expected.copy()
        model[..., tile:] = 0.0
        yield f"value features beyond {tile} left unwritten (zeros)", model


def last_query_tile_unwritten(inputs: SdpaInputs, judging: Judging) -> Iterator[tuple[str, np.ndarray]]:
    L = inputs.query.shape[-2]
    expected = judging.expected(inputs)
    for tile in sorted((size for size in LENGTH_TILES if size < L and L % size), reverse=True):  # the widest first
        start = tile * (L // tile)
        model = expected.copy()
        model[..., start:, :] = 0.0
        yield f"query rows {start} to {L - 1} (the last partial tile of {tile} rows) left unwritten (zeros)", model


def tiles_normalised_alone(inputs: SdpaInputs, judging: Judging) -> Iterator[tuple[str, np.ndarray]]:
    """Each tile of keys shifted by its own max, and the tiles' numerators and sums added without rescaling."""
    mask = None if inputs.attn_mask is None or inputs.attn_mask.dtype == np.bool_ else as_float64(inputs.attn_mask)
    call = prepare(*(as_float64(a) for a in (inputs.query, inputs.key, inputs.value)),
                   inputs.attn_mask if mask is None else mask, inputs.is_causal, inputs.scale,
                   causal_alignment=judging.alignment, **inputs.keywords)
    x = masked_scores(call)  # (*batch, L, S): the reference's stages 1 to 3
    value = np.broadcast_to(call.value, call.batch + call.value.shape[-2:])  # (*batch, S, Ev)
    for tile in (size for size in LENGTH_TILES if size < call.S):
        output = np.zeros(call.batch + (call.L, call.Ev))
        total = np.zeros(call.batch + (call.L, 1))
        for j0 in range(0, call.S, tile):
            block = x[..., j0:j0 + tile]  # (*batch, L, tile)
            top = np.max(block, axis=-1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            numerator = np.exp(block - top)
            output += numerator @ value[..., j0:j0 + tile, :]
            total += numerator.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            yield f"each tile of {tile} keys normalised on its own (the running max not carried across tiles)", \
                np.where(total > 0, output / np.where(total > 0, total, 1.0), 0.0)


MODELS: tuple[Model, ...] = (keys_truncated, head_dim_truncated, value_features_unwritten, last_query_tile_unwritten,
                             tiles_normalised_alone)


def name_departure(result: np.ndarray, inputs: SdpaInputs, judging: Judging, bound: np.ndarray) -> str | None:
    """The first named model the output agrees with within ``bound``, or None."""
    with np.errstate(all="ignore"):
        for model in MODELS:
            for name, output in model(inputs, judging):
                if output.shape == result.shape and mismatch(result, output, bound) is None:
                    return name
    return None
