"""The ``sdpa`` strategy: hypothesis draws an :class:`~kqv.conformance.kinds.sdpa.case.SdpaCase`
within the backend's declaration, from the pieces of :mod:`kqv.conformance.strategies`, then the
variants of the contract it declares.

A check names what it draws with :func:`cases` (``cases(masks=("bool",), causal=(False, True))``),
which keeps those options: the registry can then say, for instance, which checks draw explicit
scales.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ...declaration import Declaration
from ...profiles import Profile
from ...strategies import batch_shapes, explicit_scales, lengths, seeds, supported_masks, widths
from ...variants import VARIANTS
from .case import MASK_SHAPES, SdpaCase


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
               other_variants: bool = True) -> SdpaCase:
    """An ``sdpa`` case within the declaration; every query row keeps a key unless ``empty_rows``.

    ``scales``: False (the default scale), True (sometimes an explicit one) or ``"always"``.
    ``variants``: the variants every case uses (with the options of their draw), where the backend
    declares them; the other declared variants are drawn now and then (off first, so that a failure
    shrinks to the case without them) unless ``other_variants`` is False.
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
    case = SdpaCase(
        dtype=dtype, batch=batch, L=L, S=S, E=E, Ev=Ev,
        values=draw(st.sampled_from(values)),
        mask=mask, mask_shape=draw(st.sampled_from(shapes)) if mask != "none" else "full",
        empty_rows=empty_rows and mask != "none",
        is_causal=is_causal, alignment=declaration.alignment,
        scale=_scale(draw, scales) if declaration.scale else None,
        seed=draw(seeds()),
    )
    forced = variants or {}
    for name in declaration.variants:
        if name in forced:
            case = VARIANTS[name].draw(draw, case, declaration, profile, **forced[name])
        elif other_variants and draw(st.booleans()):
            case = VARIANTS[name].draw(draw, case, declaration, profile)
    return case


def _scale(draw, scales: bool | str) -> float | None:
    if scales == "always":
        return draw(explicit_scales())
    return draw(st.one_of(st.none(), explicit_scales())) if scales else None


