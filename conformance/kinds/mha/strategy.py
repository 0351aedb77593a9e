"""The ``mha`` strategy: hypothesis draws an :class:`~kqv.conformance.kinds.mha.case.MhaCase` within the
backend's declaration, from the pieces of :mod:`kqv.conformance.strategies`."""

from __future__ import annotations

from hypothesis import strategies as st

from ...declaration import Declaration
from ...profiles import Profile
from ...strategies import causal_flags, choice, integers, seeds, sizes, supported_masks, tile_sizes
from .case import MhaCase


@st.composite
def mha_cases(draw, declaration: Declaration, dtype: str, profile: Profile, *, weights: tuple[str, ...] = ("normal",),
              min_heads: int = 1, max_heads: int | None = None, biases: tuple[tuple[str, ...], ...] = ((),),
              masks: tuple[str, ...] = ("none",), causal: tuple[bool, ...] = (False,), empty_rows: bool = False,
              cross: bool = False, self_attention: tuple[bool, ...] = (False,), every_tile: bool = False) -> MhaCase:
    """An ``mha`` case; ``cross`` makes L and S differ where the backend accepts it; a backend of self-attention only
    (``cross_attention=False``) gets ``x_kv`` = ``x_q`` in every case.

    At tile boundaries (``profile.tiles``) the head width ``d_k``, the model width ``d_model`` or the
    key length sits on either side of a tile size (clause ``attention.tile-boundaries``); with
    ``every_tile`` all three do, and the batch has one entry.
    """
    h = draw(integers(min_heads, max(min_heads, max_heads or profile.max_heads)))
    d_k = draw(sizes(profile.max_width))
    axes = ("d_k", "S") + (() if declaration.heads_split_model else ("d_model",))
    axis = draw(choice(axes)) if profile.tiles and not every_tile else None
    if axis == "d_k" or every_tile:
        d_k = draw(tile_sizes(profile.width_boundaries()))
    d_v = draw(sizes(profile.max_width)) if declaration.value_width and not declaration.heads_split_model else d_k
    d_model = h * d_k if declaration.heads_split_model else draw(sizes(profile.max_width))
    if axis == "d_model" or (every_tile and not declaration.heads_split_model):
        d_model = draw(tile_sizes(profile.width_boundaries()))
    is_self = draw(choice(self_attention)) if declaration.cross_attention else True
    S = draw(sizes(profile.max_length))
    if axis == "S" or every_tile:
        S = draw(tile_sizes(profile.length_boundaries()))
    L = S if is_self or not declaration.cross_lengths else draw(sizes(profile.max_length))
    if cross and declaration.cross_lengths and L == S and not is_self:
        L = S + 1
    is_causal = draw(choice(causal_flags(declaration, causal)))
    mask_kinds = supported_masks(declaration, masks)
    if is_causal and not declaration.mask_with_causal:
        mask_kinds = tuple(kind for kind in mask_kinds if kind == "none")
    mask = draw(choice(mask_kinds or ("none",)))
    return MhaCase(
        dtype=dtype, B=1 if every_tile else draw(integers(1, profile.max_batch)), L=L, S=S, d_model=d_model, num_heads=h,
        d_k=d_k, d_v=d_v, biases=draw(choice(biases)) if declaration.biases else (),
        weights=draw(choice(weights)), self_attention=is_self, mask=mask,
        mask_batch=draw(st.booleans()) if declaration.mask_batch else False,
        empty_rows=empty_rows and mask != "none", is_causal=is_causal, seed=draw(seeds()),
    )
