"""The ``pe`` strategy: ``(length, d_model)`` pairs, small first, with the parity a check asks for."""

from __future__ import annotations

from hypothesis import strategies as st

from ...declaration import Declaration
from ...profiles import Profile
from ...strategies import sizes, tile_sizes
from .case import PeCase


@st.composite
def pe_cases(draw, declaration: Declaration, profile: Profile, *, parity: str = "any", min_length: int = 1,
             min_d_model: int = 1) -> PeCase:
    """A ``pe`` case; ``parity`` is ``any``, ``even`` or ``odd`` (of ``d_model``); ``any`` is ``even`` for a backend
    that declares no odd widths (``odd_d_model=False``).

    At tile boundaries (``profile.tiles``) ``d_model`` sits on either side of a tile size (64, 128,
    256, ...) and the length on either side of a long block of positions.
    """
    d_model = draw(sizes(profile.max_d_model, min_d_model))
    if profile.tiles:
        d_model = draw(tile_sizes(profile.width_boundaries()))
    if parity == "any" and not declaration.odd_d_model:
        parity = "even"
    if parity == "even" and d_model % 2:
        d_model += 1
    elif parity == "odd" and d_model % 2 == 0:
        d_model += 1
    length = draw(sizes(profile.max_pe_length, min_length))
    if profile.tiles:
        length = draw(tile_sizes(profile.pe_length_boundaries()))
    return PeCase(length=length, d_model=d_model)
