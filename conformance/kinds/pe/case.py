"""The ``pe`` case: ``fn(length, d_model)``; the call takes no array, so the case is its own input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..base import Case


@dataclass(frozen=True)
class PeCase(Case):
    """One ``pe`` call: ``fn(length, d_model)``."""

    kind: ClassVar[str] = "pe"

    length: int = 1
    d_model: int = 1
