"""Hypothesis strategies for cases, composed from small named pieces.

Each piece draws one aspect (batch shape, lengths, widths, mask, scale, value profile, seed) within
what the backend declares and the profile allows, listing its simplest choice first so that a
failing case shrinks to the smallest shapes, no mask, the ``normal`` profile and seed 0.
"""

from __future__ import annotations

from hypothesis import strategies as st

from .cases import MASK_SHAPES, MhaCase, PeCase, SdpaCase
from .declaration import Declaration
from .profiles import Profile

SMALL = 8


def sizes(maximum: int, minimum: int = 1) -> st.SearchStrategy[int]:
    """A size, mostly small (up to 8), now and then anywhere up to ``maximum``."""
    small = st.integers(minimum, max(minimum, min(maximum, SMALL)))
    return st.one_of(small, st.integers(minimum, max(minimum, maximum)))


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


def batch_shapes(declaration: Declaration, profile: Profile, min_dims: int = 0) -> st.SearchStrategy[tuple[int, ...]]:
    """Leading batch dims: as many as the backend accepts (0, 1 or 2), each of size 1 to ``max_batch``."""
    counts = [n for n in declaration.batch_dims if n >= min_dims] or [max(declaration.batch_dims)]
    return st.sampled_from(counts).flatmap(
        lambda n: st.tuples(*[st.integers(1, profile.max_batch)] * n))


@st.composite
def lengths(draw, declaration: Declaration, profile: Profile, *, equal: bool = False,
            queries_at_most_keys: bool = False) -> tuple[int, int]:
    """``(L, S)``: L = S, L < S or L > S (1 included), or only L = S when the backend needs it."""
    S = draw(sizes(profile.max_length))
    if equal or not declaration.cross_lengths:
        return S, S
    L = draw(sizes(S if queries_at_most_keys else profile.max_length))
    return L, S


@st.composite
def widths(draw, declaration: Declaration, profile: Profile, min_width: int = 1) -> tuple[int, int]:
    """``(E, Ev)``: Ev differs from E only where the backend accepts it."""
    E = draw(sizes(profile.max_width, min_width))
    Ev = draw(sizes(profile.max_width)) if declaration.value_width else E
    return E, Ev


def supported_masks(declaration: Declaration, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The mask kinds among ``kinds`` the backend accepts (``none`` always)."""
    allowed = {"none": True, "bool": declaration.bool_mask, "float": declaration.float_mask}
    return tuple(kind for kind in kinds if allowed[kind])


def explicit_scales() -> st.SearchStrategy[float]:
    """Positive scales: a few round ones, then any from 1e-3 to 1e2."""
    return st.one_of(st.sampled_from([1.0, 0.5, 2.0, 0.125]),
                     st.floats(1e-3, 1e2, allow_nan=False, allow_infinity=False))


@st.composite
def sdpa_cases(draw, declaration: Declaration, dtype: str, profile: Profile, *, values: tuple[str, ...] = ("normal",),
               masks: tuple[str, ...] = ("none",), causal: tuple[bool, ...] = (False,), scales: bool | str = False,
               empty_rows: bool = False, min_width: int = 1, min_batch_dims: int = 0, equal_lengths: bool = False,
               min_length: int = 1) -> SdpaCase:
    """An ``sdpa`` case within the declaration; every query row keeps a key unless ``empty_rows``.

    ``scales``: False (the default scale), True (sometimes an explicit one) or ``"always"``.
    """
    batch = draw(batch_shapes(declaration, profile, min_batch_dims))
    is_causal = draw(st.sampled_from([c for c in causal if declaration.causal or not c] or [False]))
    mask_kinds = supported_masks(declaration, masks)
    if is_causal and not declaration.mask_with_causal:
        mask_kinds = tuple(kind for kind in mask_kinds if kind == "none")
    mask = draw(st.sampled_from(mask_kinds or ("none",)))
    bottom_right = is_causal and declaration.alignment == "bottom-right"
    L, S = draw(lengths(declaration, profile, equal=equal_lengths, queries_at_most_keys=bottom_right and not empty_rows))
    if min_length > 1:
        L, S = max(L, min_length), max(S, min_length)
    E, Ev = draw(widths(declaration, profile, min_width))
    shapes = MASK_SHAPES if declaration.mask_batch and batch else ("shared",)
    return SdpaCase(
        dtype=dtype, batch=batch, L=L, S=S, E=E, Ev=Ev,
        values=draw(st.sampled_from(values)),
        mask=mask, mask_shape=draw(st.sampled_from(shapes)) if mask != "none" else "full",
        empty_rows=empty_rows and mask != "none",
        is_causal=is_causal, alignment=declaration.alignment,
        scale=_scale(draw, scales) if declaration.scale else None,
        seed=draw(seeds()),
    )


def _scale(draw, scales: bool | str) -> float | None:
    if scales == "always":
        return draw(explicit_scales())
    return draw(st.one_of(st.none(), explicit_scales())) if scales else None


@st.composite
def mha_cases(draw, declaration: Declaration, dtype: str, profile: Profile, *, weights: tuple[str, ...] = ("normal",),
              min_heads: int = 1, max_heads: int | None = None, biases: tuple[tuple[str, ...], ...] = ((),),
              masks: tuple[str, ...] = ("none",), causal: tuple[bool, ...] = (False,), empty_rows: bool = False,
              cross: bool = False, self_attention: tuple[bool, ...] = (False,)) -> MhaCase:
    """An ``mha`` case; ``cross`` makes L and S differ where the backend accepts it."""
    h = draw(st.integers(min_heads, max(min_heads, max_heads or profile.max_heads)))
    d_k = draw(sizes(profile.max_width))
    d_v = draw(sizes(profile.max_width)) if declaration.value_width and not declaration.heads_split_model else d_k
    d_model = h * d_k if declaration.heads_split_model else draw(sizes(profile.max_width))
    is_self = draw(st.sampled_from(self_attention))
    S = draw(sizes(profile.max_length))
    L = S if is_self or not declaration.cross_lengths else draw(sizes(profile.max_length))
    if cross and declaration.cross_lengths and L == S:
        L = S + 1
    is_causal = draw(st.sampled_from([c for c in causal if declaration.causal or not c] or [False]))
    mask_kinds = supported_masks(declaration, masks)
    if is_causal and not declaration.mask_with_causal:
        mask_kinds = tuple(kind for kind in mask_kinds if kind == "none")
    mask = draw(st.sampled_from(mask_kinds or ("none",)))
    return MhaCase(
        dtype=dtype, B=draw(st.integers(1, profile.max_batch)), L=L, S=S, d_model=d_model, num_heads=h,
        d_k=d_k, d_v=d_v, biases=draw(st.sampled_from(biases)) if declaration.biases else (),
        weights=draw(st.sampled_from(weights)), self_attention=is_self, mask=mask,
        mask_batch=draw(st.booleans()) if declaration.mask_batch else False,
        empty_rows=empty_rows and mask != "none", is_causal=is_causal, seed=draw(seeds()),
    )


@st.composite
def pe_cases(draw, profile: Profile, *, parity: str = "any", min_length: int = 1, min_d_model: int = 1) -> PeCase:
    """A ``pe`` case; ``parity`` is ``any``, ``even`` or ``odd`` (of ``d_model``)."""
    d_model = draw(sizes(profile.max_d_model, min_d_model))
    if parity == "even" and d_model % 2:
        d_model += 1
    elif parity == "odd" and d_model % 2 == 0:
        d_model += 1
    return PeCase(length=draw(sizes(profile.max_pe_length, min_length)), d_model=d_model)
