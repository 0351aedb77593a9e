"""The ``sdpa`` case: a few named parameters and a seed that determine the arrays of one call.

Hypothesis draws and shrinks the parameters (``kqv.conformance.kinds.sdpa.strategy``); the arrays
are made from them by NumPy, so a counterexample is small to print, exact to replay
(``Case.to_json`` / ``case_from_json``) and cheap to build at any size. Arrays come out already
rounded to the dtype under test. The variants of the contract a case uses (``variants``, e.g.
``(("gqa", 2),)``) change its arrays and add their keywords to the call, each as its
:class:`~kqv.conformance.variants.base.Variant` says.

Value profiles (``values``), each a way attention is known to break:

- ``normal``: standard normal entries;
- ``large``: scores scaled to reach past where a naive ``exp`` overflows in the dtype
  (``log(max)``: 709 in float64, 88 in float32, 11 in float16), up to 4 times that;
- ``huge``: scores of 1e3 to 1e6 (at most ``sqrt(max)/4``);
- ``far-apart``: each query row's scores sit around its own offset, rows up to ``4 log(max)`` apart;
- ``ties``: small integer entries, so many scores tie exactly;
- ``identical-keys``: every key row equal, so the weights are uniform;
- ``zeros``: a zero query, so every score is 0;
- ``large-values`` / ``tiny-values``: values of magnitude 1e2 to 1e4 / 1e-6 to 1e-3.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...dtypes import LARGEST, round_to
from ...profiles import LENGTH_TILES
from ...variants import variant
from ..base import Case, rng as _rng

VALUES = ("normal", "large", "huge", "far-apart", "ties", "identical-keys", "zeros", "large-values", "tiny-values")
MASKS = ("none", "bool", "float")
MASK_SHAPES = ("full", "shared", "broadcast")
# How a mask meets the tiles of keys (clause attention.tile-boundaries): at random; a whole tile of keys masked for
# every query; or only the keys of the last, partial tile kept.
MASK_PATTERNS = ("random", "tile-gap", "last-tile")


@dataclass(frozen=True)
class SdpaInputs:
    """The arrays of one ``sdpa`` call, in the dtype under test (the mask bool or in that dtype)."""

    query: np.ndarray  # (..., L, E)
    key: np.ndarray  # (..., S, E)
    value: np.ndarray  # (..., S, Ev)
    attn_mask: np.ndarray | None = None  # broadcastable to (..., L, S)
    is_causal: bool = False
    scale: float | None = None
    variants: tuple[tuple[str, Any], ...] = ()  # (name, parameter) of each variant the call uses

    @property
    def keywords(self) -> dict[str, Any]:
        """The keywords the variants add to the call and to the reference's stages (``enable_gqa=True``); those that
        only ask for a further result (``return_lse=True``) are in :attr:`call_keywords`."""
        return self._added(results=False)

    @property
    def call_keywords(self) -> dict[str, Any]:
        """Every keyword the variants add to the backend's call, those asking for a further result included."""
        return self._added(results=True)

    def _added(self, results: bool) -> dict[str, Any]:
        added: dict[str, Any] = {}
        for name, parameter in self.variants:
            if results or variant(name).result is None:
                added.update(variant(name).keywords(parameter))
        return added

    @property
    def results(self) -> tuple[str, ...]:
        """The further results the call returns after the output (``("lse",)`` with ``return_lse=True``)."""
        return tuple(variant(name).result for name, _ in self.variants if variant(name).result is not None)

    def output_shape(self) -> tuple[int, ...]:
        """``(..., L, Ev)`` (clause ``attention.shape``): the batch dims broadcast as the variants map them."""
        shapes = {"query": self.query.shape, "key": self.key.shape, "value": self.value.shape}
        for name, parameter in self.variants:
            shapes = variant(name).shapes(parameter, shapes)
        batch = np.broadcast_shapes(*(shape[:-2] for shape in shapes.values()))
        return tuple(batch) + (self.query.shape[-2], self.value.shape[-1])

    def replace(self, **changes: Any) -> "SdpaInputs":
        return dataclasses.replace(self, **changes)

    def heads_moved(self, order: np.ndarray, kv_order: np.ndarray | None = None) -> "SdpaInputs":
        """The call with query head ``h`` the old head ``order[h]`` (axis -3), key and value heads moved by ``kv_order``
        (``order`` when None), and a mask per head and the variants' per-head parameters moved with the query heads."""
        kv_order = order if kv_order is None else kv_order
        mask = self.attn_mask
        if mask is not None and mask.ndim >= 3 and mask.shape[-3] == self.query.shape[-3]:
            mask = mask[..., order, :, :]  # a mask per query head moves with it
        variants = tuple((name, variant(name).heads(parameter, order)) for name, parameter in self.variants)
        return self.replace(query=self.query[..., order, :, :], key=self.key[..., kv_order, :, :],
                            value=self.value[..., kv_order, :, :], attn_mask=mask, variants=variants)

    def without(self, name: str) -> "SdpaInputs":
        """The same call without the variant ``name`` (its keywords dropped, its arrays as they are)."""
        return self.replace(variants=tuple((n, p) for n, p in self.variants if n != name))


@dataclass(frozen=True)
class SdpaCase(Case):
    """One ``sdpa`` call: dtype, shapes, value profile, mask, causal flag, scale and seed."""

    kind: ClassVar[str] = "sdpa"

    dtype: str = "float64"
    batch: tuple[int, ...] = ()
    L: int = 1
    S: int = 1
    E: int = 1
    Ev: int = 1
    values: str = "normal"
    mask: str = "none"
    mask_shape: str = "full"
    empty_rows: bool = False  # some query rows keep no key at all
    mask_pattern: str = "random"  # one of MASK_PATTERNS
    is_causal: bool = False
    alignment: str = "top-left"  # of is_causal, to keep one key per row where rows must keep one
    scale: float | None = None
    seed: int = 0
    variants: tuple[tuple[str, Any], ...] = ()  # (name, parameter) of each variant the call uses

    def variant(self, name: str) -> Any:
        """The parameter of variant ``name`` in this case, or None when it does not use it."""
        return dict(self.variants).get(name)

    @property
    def default_scale(self) -> float:
        return self.scale if self.scale is not None else 1.0 / math.sqrt(self.E)

    def build(self) -> SdpaInputs:
        query, key, value = _sdpa_values(self, _rng(self.seed))
        mask = _sdpa_mask(self, _rng(self.seed, 1))
        arrays = {"query": round_to(query, self.dtype), "key": round_to(key, self.dtype),
                  "value": round_to(value, self.dtype)}
        for name, parameter in self.variants:
            arrays = variant(name).build(parameter, arrays)
        return SdpaInputs(**arrays, attn_mask=mask, is_causal=self.is_causal, scale=self.scale,
                          variants=self.variants)


def _sdpa_values(case: SdpaCase, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batch, (L, S, E, Ev) = case.batch, (case.L, case.S, case.E, case.Ev)
    query = rng.standard_normal(batch + (L, E))
    key = rng.standard_normal(batch + (S, E))
    value = rng.standard_normal(batch + (S, Ev))
    s = case.default_scale
    overflow = math.log(LARGEST[case.dtype])  # where exp overflows in the dtype
    if case.values in ("large", "huge"):
        target = overflow * 10 ** rng.uniform(-0.3, 0.6) if case.values == "large" else \
            min(10 ** rng.uniform(3, 6), math.sqrt(LARGEST[case.dtype]) / 4)
        reached = np.max(np.abs(s * query @ np.swapaxes(key, -1, -2)), initial=0.0)
        if reached > 0:
            # A small explicit scale asks for large query entries: they stay within half the dtype's range, so that
            # rounding to the dtype never makes them infinite (the scores then fall short of the target).
            factor, largest = target / reached, float(np.max(np.abs(query)))
            if largest * factor > LARGEST[case.dtype] / 2:
                factor = LARGEST[case.dtype] / 2 / largest
            query = query * factor
    elif case.values == "far-apart" and E:
        key[..., 0] = 1.0
        sign = rng.choice([-1.0, 1.0], size=batch + (L,))
        query[..., 0] = sign * 10 ** rng.uniform(0, math.log10(4 * overflow), size=batch + (L,)) / s
    elif case.values == "ties":
        query = rng.integers(-2, 3, size=query.shape).astype(np.float64)
        key = rng.integers(-2, 3, size=key.shape).astype(np.float64)
    elif case.values == "identical-keys":
        key = np.broadcast_to(key[..., :1, :], key.shape).copy()
    elif case.values == "zeros":
        query = np.zeros_like(query)
    elif case.values == "large-values":
        value = value * 10 ** rng.uniform(2, 4)
    elif case.values == "tiny-values":
        value = value * 10 ** rng.uniform(-6, -3)
    return query, key, value


def _mask_shape(case: SdpaCase, rng: np.random.Generator) -> tuple[int, ...]:
    """``full`` (the batch dims, then L, S), ``shared`` (L, S), ``broadcast`` (each batch dim kept or 1 at random),
    or ``broadcast-<digits>``, a digit per batch dim (1 kept, 0 made 1: ``broadcast-10`` is ``(B, 1, L, S)``)."""
    if case.mask_shape == "shared":
        return (case.L, case.S)
    if case.mask_shape == "broadcast":
        return tuple(n if rng.random() < 0.5 else 1 for n in case.batch) + (case.L, case.S)
    if case.mask_shape.startswith("broadcast-"):
        return tuple(n if kept == "1" else 1 for n, kept in zip(case.batch, case.mask_shape[10:])) + (case.L, case.S)
    return case.batch + (case.L, case.S)


def _tile_pattern(case: SdpaCase, rng: np.random.Generator) -> np.ndarray | None:
    """The keys, ``(S,)`` bool, that the case's tile pattern leaves to the mask (None: every key).

    ``tile-gap`` masks a whole tile of ``T`` keys (``T`` a tile size below ``S``; never the tile of key 0
    under ``is_causal``, which every causal row must keep); ``last-tile`` keeps only the keys of the
    last, partial tile. A case without a tile below ``S`` keeps every key.
    """
    tiles = [size for size in LENGTH_TILES if size < case.S]
    if case.mask_pattern == "random" or not tiles:
        return None
    size = tiles[int(rng.integers(len(tiles)))]
    allowed = np.ones(case.S, dtype=bool)
    if case.mask_pattern == "last-tile":
        allowed[:size * ((case.S - 1) // size)] = False
        return allowed
    first = 1 if case.is_causal else 0
    count = -(-case.S // size)  # tiles, the last one partial
    if count <= first:
        return None
    tile = int(rng.integers(first, count))
    allowed[tile * size:(tile + 1) * size] = False
    return allowed if allowed.any() else None


def variant_keeps(case: SdpaCase) -> np.ndarray | None:
    """``(L, S)`` bool: the keys every variant of the case that drops keys keeps (a window), or None."""
    limits = None
    for name, parameter in case.variants:
        keeps = variant(name).keeps
        if keeps is not None:
            kept = keeps(parameter, case)
            limits = kept if limits is None else limits & kept
    return limits


def _kept_by_each_row(case: SdpaCase, limits: np.ndarray, allowed: np.ndarray | None, rng: np.random.Generator,
                      rows: tuple[int, ...]) -> np.ndarray:
    """For each mask row (``rows``, ending in L), a key that the variants, the causal rule and, where it leaves one,
    the tile pattern keep: ``rows`` int. A row whose variants keep nothing gets key 0 (it stays empty anyway)."""
    candidates = limits.copy()  # (L, S)
    if case.is_causal:
        o = 0 if case.alignment == "top-left" else case.S - case.L
        candidates &= np.arange(case.S)[None, :] <= np.arange(case.L)[:, None] + o
    if allowed is not None:
        patterned = candidates & allowed
        candidates = np.where(patterned.any(axis=-1, keepdims=True), patterned, candidates)
    draws = rng.random(rows + (case.S,)) * candidates  # (..., L, S): 0 off the candidates
    return np.argmax(draws, axis=-1)


def _sdpa_mask(case: SdpaCase, rng: np.random.Generator) -> np.ndarray | None:
    """The attn_mask of the case: every row keeps a key unless ``empty_rows``, then some keep none."""
    if case.mask == "none":
        return None
    shape = _mask_shape(case, rng)
    density = rng.uniform(0.2, 0.9)
    keep = rng.random(shape) < density
    allowed = _tile_pattern(case, _rng(case.seed, 2))  # (S,): the keys the pattern leaves, or None
    if allowed is not None:
        keep &= allowed
    limits = variant_keeps(case)  # (L, S): the keys the case's variants keep, or None
    if case.S:
        # One key per row stays kept (among those the pattern leaves); under is_causal it is key 0, which every
        # causal row sees; where a variant drops keys, one it keeps.
        if limits is not None:
            chosen = _kept_by_each_row(case, limits, allowed, rng, shape[:-1])
        elif case.is_causal:
            chosen = np.zeros(shape[:-1], dtype=np.int64)
        elif allowed is None:
            chosen = rng.integers(0, case.S, shape[:-1])
        else:
            candidates = np.flatnonzero(allowed)
            chosen = candidates[rng.integers(0, len(candidates), shape[:-1])]
        np.put_along_axis(keep, chosen[..., None], True, axis=-1)
    if case.empty_rows and case.L:
        rows = rng.random(shape[:-1]) < 0.4
        rows.flat[rng.integers(0, rows.size)] = True
        keep &= ~rows[..., None]
    if case.mask == "bool":
        return keep
    sigma = rng.choice([0.5, 3.0, 30.0])
    bias = rng.normal(0.0, sigma, shape)
    return round_to(np.where(keep, bias, -np.inf), case.dtype)
