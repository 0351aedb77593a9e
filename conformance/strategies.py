"""The pieces the strategies of every kind are composed from (hypothesis).

Each piece draws one aspect (batch shape, lengths, widths, mask kinds, scale, seed) within what
the backend declares and the profile allows, listing its simplest choice first so that a failing
case shrinks to the smallest shapes, no mask and seed 0. Each kind composes them into its cases in
``kqv.conformance.kinds.<kind>.strategy``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

if TYPE_CHECKING:  # the variants draw from here, and the declaration imports them
    from .declaration import Declaration
    from .profiles import Profile

SMALL = 8


# Strategies are made once for each set of arguments: a new one is validated on its first draw, which cost about
# half of the drawing time when every case made its own.
def choice(options: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """One of ``options``, the first one simplest (``st.sampled_from``, made once per tuple and element types:
    ``(True,)`` and ``(1,)`` are equal tuples, but not the same choice)."""
    return _choice(tuple((type(option), option) for option in options))


@functools.lru_cache(maxsize=None)
def _choice(typed: tuple[tuple[type, Any], ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(tuple(option for _, option in typed))


@functools.lru_cache(maxsize=None)
def integers(low: int, high: int) -> st.SearchStrategy[int]:
    """An integer from ``low`` to ``high`` (``st.integers``, made once per range)."""
    return st.integers(low, high)



@functools.lru_cache(maxsize=None)
def sizes(maximum: int, minimum: int = 1) -> st.SearchStrategy[int]:
    """A size, mostly small (up to 8), now and then anywhere up to ``maximum``."""
    small = integers(minimum, max(minimum, min(maximum, SMALL)))
    return st.one_of(small, integers(minimum, max(minimum, maximum)))


@functools.lru_cache(maxsize=None)
def tile_sizes(sizes: tuple[int, ...]) -> st.SearchStrategy[int]:
    """A size on either side of a tile size, or on it, from the increasing ``sizes`` (``Profile.*_boundaries``,
    clause ``attention.tile-boundaries``): a failure shrinks to the smallest size that shows it (S = 129 for
    keys dropped past 128)."""
    return st.sampled_from(sizes)


@functools.lru_cache(maxsize=None)
def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


@functools.lru_cache(maxsize=None)
def batch_shapes(declaration: Declaration, profile: Profile, min_dims: int = 0) -> st.SearchStrategy[tuple[int, ...]]:
    """Leading batch dims: as many as the backend accepts (0, 1 or 2), each of size 1 to ``max_batch``."""
    counts = [n for n in declaration.batch_dims if n >= min_dims] or [max(declaration.batch_dims)]
    return st.sampled_from(counts).flatmap(
        lambda n: st.tuples(*[integers(1, profile.max_batch)] * n))


@functools.lru_cache(maxsize=None)
@st.composite
def lengths(draw, declaration: Declaration, profile: Profile, *, equal: bool = False,
            queries_at_most_keys: bool = False) -> tuple[int, int]:
    """``(L, S)``: L = S, L < S or L > S (1 included), or only L = S when the backend needs it."""
    S = draw(sizes(profile.max_length))
    if equal or not declaration.cross_lengths:
        return S, S
    L = draw(sizes(S if queries_at_most_keys else profile.max_length))
    return L, S


@functools.lru_cache(maxsize=None)
@st.composite
def widths(draw, declaration: Declaration, profile: Profile, min_width: int = 1) -> tuple[int, int]:
    """``(E, Ev)``: Ev differs from E only where the backend accepts it."""
    E = draw(sizes(profile.max_width, min_width))
    Ev = draw(sizes(profile.max_width)) if declaration.value_width else E
    return E, Ev


def causal_flags(declaration: Declaration, wanted: tuple[bool, ...]) -> tuple[bool, ...]:
    """The ``is_causal`` flags among ``wanted`` the backend accepts (``causal``, ``non_causal``).

    Where it accepts none of them, the one it does accept: a causal-only backend (``non_causal=False``) gets
    causal calls from a check that draws non-causal ones (a check whose property needs calls without
    ``is_causal`` requires ``non_causal`` and is skipped instead).
    """
    accepted = tuple(flag for flag in wanted if (declaration.causal if flag else declaration.non_causal))
    return accepted or (not declaration.non_causal,)


def supported_masks(declaration: Declaration, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The mask kinds among ``kinds`` the backend accepts (``none`` always)."""
    allowed = {"none": True, "bool": declaration.bool_mask, "float": declaration.float_mask}
    return tuple(kind for kind in kinds if allowed[kind])


@functools.lru_cache(maxsize=None)
def explicit_scales() -> st.SearchStrategy[float]:
    """Positive scales: a few round ones, then any from 1e-3 to 1e2."""
    return st.one_of(st.sampled_from([1.0, 0.5, 2.0, 0.125]),
                     st.floats(1e-3, 1e2, allow_nan=False, allow_infinity=False))
