"""kqv.spec: every formula and property of transformer attention as a clause with a stable id.

``CLAUSES`` maps each id to its :class:`Clause`, in reading order (section by section, as listed in
``SECTIONS``); :func:`clause` looks one up and suggests close ids for a typo. Each clause has a
one-line statement, a sympy expression and its LaTeX, and where there is one a derivation whose
steps sympy checks (:meth:`Derivation.check`).
"""

from __future__ import annotations

import dataclasses
import difflib

from . import (alibi, attention, gradient_properties, gradients, heads, lengths, lse, masking, mha_gradients, multihead,
               output, positional, projections, scores, sinks, softcap, softmax, windows)
from .clause import Clause, Derivation, DerivationError, Step

_MODULES = (projections, scores, masking, softmax, output, attention, heads, windows, softcap, alibi, lengths,
            sinks, lse, multihead, mha_gradients, positional, gradients, gradient_properties)

# mha_gradients adds to the section of multihead
SECTIONS: list[tuple[str, str]] = list(dict.fromkeys(module.SECTION for module in _MODULES))


def _collect() -> dict[str, Clause]:
    clauses: dict[str, Clause] = {}
    for module in _MODULES:
        for item in module.CLAUSES:
            if item.id in clauses:
                raise ValueError(f"duplicate clause id {item.id!r}")
            if item.section != module.SECTION[0]:
                raise ValueError(f"clause {item.id!r} is in section {item.section!r}, listed under {module.SECTION[0]!r}")
            clauses[item.id] = item if item.page else dataclasses.replace(item, page=module.PAGE)
    return clauses


CLAUSES: dict[str, Clause] = _collect()


def clause(id: str) -> Clause:  # noqa: A002 - the clause's own word for it
    """The clause with this id; a ``KeyError`` naming the id and the closest known ids otherwise."""
    try:
        return CLAUSES[id]
    except KeyError:
        close = difflib.get_close_matches(id, list(CLAUSES), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(candidate) for candidate in close)}?" if close else ""
        raise KeyError(f"unknown clause id {id!r}{hint}") from None


__all__ = ["CLAUSES", "SECTIONS", "Clause", "Derivation", "DerivationError", "Step", "clause"]
