"""The named departures of ``sdpa`` at tile boundaries (clause ``attention.tile-boundaries``).

A kernel that works in tiles and gets one tile wrong gives an output a simple model explains: the keys
past the first tile dropped, the features of Q and K past the first tile dropped, the value features or
the query rows of the last partial tile never written, each tile of keys normalised on its own (the
running max and sum not carried across tiles, clause ``softmax.online``). Each model is computed by the
reference on the case's own inputs, one prediction per tile size below the case's size.
"""

from __future__ import annotations

import numpy as np

from ..profiles import LENGTH_TILES, WIDTH_TILES
from .entry import Entries, Prediction
from .sdpa_judging import scores_of

ENTRIES = Entries()
departure = ENTRIES.departure


def _keep_first_keys(inputs, count: int):
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


def _zeroed(prediction: Prediction, where: tuple) -> Prediction:
    """The prediction with the elements ``where`` (an index) exactly 0: never written."""
    options = []
    for expected, bound in prediction.options:
        expected = expected.copy()
        expected[where] = 0.0
        options.append((expected, bound))
    return Prediction(tuple(options))


@departure("keys truncated to a tile", "attends only to the first {detail} keys: the key tiles past the first are "
           "dropped")
def keys_truncated(inputs, judging):
    """The keys ``j >= T`` masked, for each tile size ``T < S``."""
    S = inputs.key.shape[-2]
    for tile in (size for size in LENGTH_TILES if size < S):
        yield str(tile), judging.predict(_keep_first_keys(inputs, tile))


@departure("head dim truncated to a tile", "uses only the first {detail} features of each query and key (the scale "
           "still that of the whole E)")
def head_dim_truncated(inputs, judging):
    """``x = s Q[..., :T] K[..., :T]^T`` with ``s`` of the whole ``E``, for each tile size ``T < E``."""
    E = inputs.query.shape[-1]
    scale = inputs.scale if inputs.scale is not None else 1.0 / np.sqrt(E)
    for tile in (size for size in WIDTH_TILES if size < E):
        cut = inputs.replace(query=np.ascontiguousarray(inputs.query[..., :tile]),
                             key=np.ascontiguousarray(inputs.key[..., :tile]), scale=scale)  # (..., n, T)
        yield str(tile), judging.predict(cut)


@departure("value features past a tile unwritten", "writes only the first {detail} value features of each output "
           "row; the others stay 0")
def value_features_unwritten(inputs, judging):
    """``O[..., T:] = 0``, for each tile size ``T < Ev``."""
    Ev = inputs.value.shape[-1]
    tiles = [size for size in WIDTH_TILES if size < Ev]
    expected = judging.predict(inputs) if tiles else None
    for tile in tiles:
        yield str(tile), _zeroed(expected, (Ellipsis, slice(tile, None)))


@departure("last query tile unwritten", "leaves the query rows of the last partial tile of {detail} rows as zeros")
def last_query_tile_unwritten(inputs, judging):
    """``O[..., T floor(L / T):, :] = 0``, for each tile size ``T < L`` that does not divide ``L``, the widest first; a
    narrower tile that leaves the same rows unwritten (``L = 65``: row 64 for 64, 32 and 16) is the same model."""
    L = inputs.query.shape[-2]
    starts = {}
    for tile in sorted((size for size in LENGTH_TILES if size < L and L % size), reverse=True):
        starts.setdefault(tile * (L // tile), tile)  # the first row left unwritten: the widest tile that leaves it
    expected = judging.predict(inputs) if starts else None
    for start, tile in starts.items():
        yield str(tile), _zeroed(expected, (Ellipsis, slice(start, None), slice(None)))


@departure("tiles of keys normalised alone", "each tile of {detail} keys is shifted by its own max and the tiles' "
           "sums are added without rescaling (the running max not carried across tiles)")
def tiles_normalised_alone(inputs, judging):
    """``O_i = sum_t sum_{j in t} exp(x_ij - m_it) v_j / sum_t sum_{j in t} exp(x_ij - m_it)``, ``m_it`` the max of
    tile ``t``; judged within the reference's bound (clause ``softmax.online``)."""
    call, x = scores_of(inputs, judging)
    if call.sinks is not None:
        return
    value = np.broadcast_to(call.value, call.batch + call.value.shape[-2:])  # (*batch, S, Ev)
    reference = judging.predict(inputs)
    for tile in (size for size in LENGTH_TILES if size < call.S):
        output = np.zeros(call.batch + (call.L, call.Ev))
        total = np.zeros(call.batch + (call.L, 1))
        for j0 in range(0, call.S, tile):
            block = x[..., j0:j0 + tile]  # (*batch, L, T)
            top = np.max(block, axis=-1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            numerator = np.exp(block - top)
            output += numerator @ value[..., j0:j0 + tile, :]
            total += numerator.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = np.where(total > 0, output / np.where(total > 0, total, 1.0), 0.0)
        yield str(tile), Prediction(tuple((expected, bound) for _, bound in reference.options))
