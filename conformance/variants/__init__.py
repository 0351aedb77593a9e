"""The variants of the ``sdpa`` contract, by name (DESIGN.md, "Variants of the sdpa contract").

Each is one :class:`~kqv.conformance.variants.base.Variant`, declared in its own package here; the
declaration gets a field of its name, the strategies draw it, the cases build it and the checks
registry imports its checks, all from this table.
"""

from __future__ import annotations

from .alibi import VARIANT as ALIBI
from .base import Variant
from .gqa import VARIANT as GQA
from .kv_lengths import VARIANT as KV_LENGTHS
from .lse import VARIANT as LSE
from .sinks import VARIANT as SINKS
from .softcap import VARIANT as SOFTCAP
from .window import VARIANT as WINDOW

VARIANTS: dict[str, Variant] = {variant.name: variant
                                for variant in (GQA, WINDOW, SOFTCAP, ALIBI, KV_LENGTHS, SINKS, LSE)}


def variant(name: str) -> Variant:
    """The variant called ``name``; a KeyError listing the known ones otherwise."""
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]


__all__ = ["VARIANTS", "Variant", "variant"]
