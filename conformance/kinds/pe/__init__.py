"""The ``pe`` kind: ``fn(length, d_model) -> (length, d_model)``, the sinusoidal positional encoding.

Its home: the case (:mod:`.case`), the strategy (:mod:`.strategy`), the call (:mod:`.call`), the
bound (:mod:`.bound`) and the checks (:mod:`.checks`), with the encodings found in the wild that a
failure is matched against.
"""

from __future__ import annotations

from ..base import Kind
from .call import call, output
from .case import PeCase
from .strategy import pe_cases

KIND = Kind(
    name="pe", case=PeCase, output_layout="(length, d_model)", leading="the declared dtypes",
    inputs=lambda case: case, arrays=lambda case: {}, call=call, output=output, expectation=None,
    general=lambda declaration, dtype, profile: pe_cases(declaration, profile), shared=("impl.determinism",),
)

__all__ = ["KIND", "PeCase"]
