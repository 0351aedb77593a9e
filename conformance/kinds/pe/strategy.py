"""The ``pe`` strategy: ``(length, d_model)`` pairs, small first, with the parity a check asks for."""

from __future__ import annotations

from hypothesis import strategies as st

from ...profiles import Profile
from ...strategies import sizes
from .case import PeCase


@st.composite
def pe_cases(draw, profile: Profile, *, parity: str = "any", min_length: int = 1, min_d_model: int = 1) -> PeCase:
    """A ``pe`` case; ``parity`` is ``any``, ``even`` or ``odd`` (of ``d_model``)."""
    d_model = draw(sizes(profile.max_d_model, min_d_model))
    if parity == "even" and d_model % 2:
        d_model += 1
    elif parity == "odd" and d_model % 2 == 0:
        d_model += 1
    return PeCase(length=draw(sizes(profile.max_pe_length, min_length)), d_model=d_model)
