"""The kinds of backend kqv checks, each with its own home: ``sdpa``, ``mha`` and ``pe``.

``KINDS`` maps each name to its :class:`~kqv.conformance.kinds.base.Kind`; :func:`case_from_json`
reads back the case of any kind.
"""

from __future__ import annotations

import json

from ..declaration import KINDS as NAMES
from . import mha, pe, sdpa
from .base import Case, Kind

KINDS: dict[str, Kind] = {kind.name: kind for kind in (sdpa.KIND, mha.KIND, pe.KIND)}
assert tuple(KINDS) == NAMES, "the kinds of the declaration and their homes differ"


def kind(name: str) -> Kind:
    """The kind called ``name``; a ValueError listing the names otherwise."""
    if name not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {name!r}")
    return KINDS[name]


def case_from_json(text: str) -> Case:
    """The case written by :meth:`Case.to_json`; a ValueError naming what is wrong otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"case: not valid JSON ({error})") from None
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        raise ValueError(f"case: expected a JSON object with \"kind\" one of {', '.join(KINDS)}")
    return KINDS[data.pop("kind")].case.from_dict(data)


__all__ = ["KINDS", "Case", "Kind", "case_from_json", "kind"]
