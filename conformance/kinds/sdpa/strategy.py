"""The ``sdpa`` strategy: hypothesis draws an :class:`~kqv.conformance.kinds.sdpa.case.SdpaCase`
within the backend's declaration, from the pieces of :mod:`kqv.conformance.strategies`, then the
variants of the contract it declares.

A check names what it draws with :func:`cases` (``cases(masks=("bool",), causal=(False, True))``),
which keeps those options: the registry can then say, for instance, which checks draw explicit
scales.
"""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import strategies as st

from ...declaration import Declaration
from ...profiles import Profile
from ...strategies import (batch_shapes, causal_flags, choice, explicit_scales, lengths, seeds, supported_masks,
                           tile_sizes, widths)
from ...variants import VARIANTS
from .case import MASK_PATTERNS, MASK_SHAPES, SdpaCase
from .shapes import pool, suits


class Cases:
    """The strategy of a check, ``(declaration, dtype, profile) -> strategy``, with the options it draws with."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def __call__(self, declaration: Declaration, dtype: str, profile: Profile) -> st.SearchStrategy[SdpaCase]:
        return sdpa_cases(declaration, dtype, profile, **self.options)

    def draws_explicit_scales(self) -> bool:
        return bool(self.options.get("scales"))


def cases(**options: Any) -> Cases:
    """The strategy that draws :func:`sdpa_cases` with ``options``."""
    return Cases(**options)


@st.composite
def sdpa_cases(draw, declaration: Declaration, dtype: str, profile: Profile, *, values: tuple[str, ...] = ("normal",),
               masks: tuple[str, ...] = ("none",), causal: tuple[bool, ...] = (False,), scales: bool | str = False,
               empty_rows: bool = False, min_width: int = 1, min_batch_dims: int = 0, equal_lengths: bool = False,
               min_length: int = 1, variants: dict[str, dict[str, Any]] | None = None,
               other_variants: bool = True, every_tile: bool = False, min_first_batch: int = 1,
               permuted: bool = False, unbiased: bool = False, whole_rows: bool = False) -> SdpaCase:
    """An ``sdpa`` case within the declaration; every query row keeps a key unless ``empty_rows``.

    ``scales``: False (the default scale), True (sometimes an explicit one) or ``"always"``.
    ``variants``: the variants every case uses (with the options of their draw), where the backend
    declares them; the other declared variants are drawn now and then (off first, so that a failure
    shrinks to the case without them) unless ``other_variants`` is False; ``permuted``: the check
    permutes queries or keys, so the variants whose rule reads positions (a window) are left out; ``unbiased``:
    the check's property holds for scores without biases, so the variants that add one (ALiBi) are left out;
    ``whole_rows``: the check's property needs the weights of a row to sum to 1 (and a row without a key to follow
    the fully-masked-row convention), so the variants under which they do not (sinks) are left out.

    At tile boundaries (``profile.tiles``, clause ``attention.tile-boundaries``) one of L, S, E and Ev
    sits on either side of a tile size and the mask meets the tiles; ``every_tile`` draws all four there.
    ``min_first_batch`` is the least size of the first batch dim. A backend with a budget of shapes
    (``profile.shapes``) gets its sizes from the budget's pool (:func:`pooled`).
    """
    batch = () if profile.shapes else draw(batch_shapes(declaration, profile, min_batch_dims))
    is_causal = draw(choice(causal_flags(declaration, causal)))
    mask_kinds = supported_masks(declaration, masks)
    if is_causal and not declaration.mask_with_causal:
        mask_kinds = tuple(kind for kind in mask_kinds if kind == "none")
    mask = draw(choice(mask_kinds or ("none",)))
    bottom_right = is_causal and declaration.alignment == "bottom-right"
    forced = variants or {}
    mask_shapes = MASK_SHAPES
    if profile.shapes:
        batch, L, S, E, Ev, mask_shape = draw(pooled(declaration, dtype, profile, forced, equal=equal_lengths,
                                         queries_at_most_keys=bottom_right and not empty_rows, min_width=min_width,
                                         min_length=min_length, min_batch_dims=min_batch_dims,
                                         min_first_batch=min_first_batch, tiles=profile.tiles, every_tile=every_tile))
        mask_shapes = (mask_shape,)
    else:
        if batch and min_first_batch > 1:
            batch = (max(min_first_batch, batch[0]),) + batch[1:]
        L, S = draw(lengths(declaration, profile, equal=equal_lengths,
                            queries_at_most_keys=bottom_right and not empty_rows))
        if min_length > 1:
            L, S = max(L, min_length), max(S, min_length)
        E, Ev = draw(widths(declaration, profile, min_width))
        if every_tile:
            batch = (1,) * len(batch)  # every size is large already
        if profile.tiles or every_tile:
            L, S, E, Ev = draw(at_tiles(declaration, profile, (L, S, E, Ev),
                                        equal_lengths or not declaration.cross_lengths, bottom_right and not empty_rows,
                                        min_width, every_tile))
    shapes = mask_shapes if declaration.mask_batch and batch else ("shared",)
    case = SdpaCase(
        dtype=dtype, batch=batch, L=L, S=S, E=E, Ev=Ev,
        values=draw(choice(values)),
        mask=mask, mask_shape=draw(choice(shapes)) if mask != "none" else "full",
        empty_rows=empty_rows and mask != "none",
        mask_pattern=draw(choice(MASK_PATTERNS[:2] if is_causal else MASK_PATTERNS))
        if mask != "none" and (profile.tiles or every_tile) else "random",
        is_causal=is_causal, alignment=declaration.alignment,
        scale=_scale(draw, scales) if declaration.scale else None,
        seed=draw(seeds()),
    )
    for name in declaration.variants:
        if name in forced:
            case = VARIANTS[name].draw(draw, case, declaration, profile, **forced[name])
        elif other_variants and not (permuted and VARIANTS[name].positional) \
                and not (unbiased and VARIANTS[name].biased) and not (whole_rows and VARIANTS[name].partial_rows) \
                and draw(st.booleans()):
            case = VARIANTS[name].draw(draw, case, declaration, profile)
    return case


def pooled(declaration: Declaration, dtype: str, profile: Profile, forced: dict[str, dict[str, Any]],
           **needs: Any) -> st.SearchStrategy[tuple[tuple[int, ...], int, int, int, int, str]]:
    """``(batch, L, S, E, Ev, mask shape)`` from the pool of a budget of shapes (:mod:`.shapes`), among the entries
    that suit the check (``needs``, see :func:`.shapes.suits`) and the variants it uses (``forced``), smallest first."""
    variants = tuple((name, tuple(sorted(options.items()))) for name, options in forced.items()
                     if name in declaration.variants)
    return _pooled(declaration, dtype, profile, variants, tuple(sorted(needs.items())))


@functools.lru_cache(maxsize=None)
def _pooled(declaration: Declaration, dtype: str, profile: Profile, variants: tuple[tuple[str, Any], ...],
            needs: tuple[tuple[str, Any], ...]) -> st.SearchStrategy[tuple[tuple[int, ...], int, int, int, int, str]]:
    wanted = dict(needs)
    wanted["equal"] = wanted["equal"] or not declaration.cross_lengths
    fitting = [shape for shape in pool(declaration, dtype, profile) if suits(shape, **wanted)
               and all(VARIANTS[name].fits(shape.batch, **dict(options)) for name, options in variants)]
    if not fitting:
        raise ValueError(f"the budget of {profile.shapes} shapes leaves none for a check that needs {wanted} and the "
                         f"variants {dict(variants)}: kqv's pool should always hold one (a bug of kqv)")
    return st.sampled_from([(s.batch, s.L, s.S, s.E, s.Ev, s.mask_shape) for s in fitting])


@st.composite
def at_tiles(draw, declaration: Declaration, profile: Profile, sizes: tuple[int, int, int, int], equal: bool,
             queries_at_most_keys: bool, min_width: int = 1, every: bool = False) -> tuple[int, int, int, int]:
    """``(L, S, E, Ev)`` with one of them (``every``: each) on either side of a tile size of the profile.

    ``equal`` keeps ``L = S``; ``queries_at_most_keys`` keeps ``L <= S`` (a bottom-right causal case
    whose rows must each keep a key); a backend that needs ``Ev = E`` gets both at once.
    """
    L, S, E, Ev = sizes
    lengths, widths = tile_sizes(profile.length_boundaries()), tile_sizes(profile.width_boundaries())
    if every:
        S = draw(lengths)
        L = S if equal else draw(lengths)
        if queries_at_most_keys:
            L = min(L, S)
        E = draw(widths)
        Ev = draw(widths) if declaration.value_width else E
        return L, S, E, Ev
    axes = ("S", "E") + (() if equal else ("L",)) + (("Ev",) if declaration.value_width else ())
    axis = draw(choice(axes))
    size = draw(lengths if axis in ("L", "S") else widths)
    if axis == "S":
        return (size if equal else min(L, size)), size, E, Ev
    if axis == "L":
        return size, (max(S, size) if queries_at_most_keys else S), E, Ev
    if axis == "E":
        return L, S, size, Ev if declaration.value_width else size
    return L, S, E, size


def _scale(draw, scales: bool | str) -> float | None:
    if scales == "always":
        return draw(explicit_scales())
    return draw(st.one_of(st.none(), explicit_scales())) if scales else None


