"""What one call shows about a departure: where the backend runs (its worker process, or this one).

:func:`observe` calls the backend once on a case, judges its output against the spec (does it depart?) and
against every departure of the kind's catalogue that applies to the call (which of them explain it, and with
which detail). Only this small :class:`Evidence` travels back to the runner, never the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import CheckFailure
from .catalogue_mha import CATALOGUE as MHA
from .catalogue_pe import CATALOGUE as PE
from .catalogue_sdpa import CATALOGUE as SDPA
from .entry import Catalogue

CATALOGUES: dict[str, Catalogue] = {catalogue.kind: catalogue for catalogue in (SDPA, MHA, PE)}


@dataclass(frozen=True)
class Evidence:
    """One call: ``output`` whether the backend returned an output of the right shape (``failure`` says what it did
    instead); ``departs`` whether the output is outside the spec's bound; ``matches`` the departures that apply to
    the call, each with the details of those of its predictions that explain the output (an empty tuple: it applies
    and explains nothing). A departure absent from ``matches`` does not apply to the call."""

    output: bool
    departs: bool = False
    matches: dict[str, tuple[str, ...]] = field(default_factory=dict)
    failure: str = ""


def observe(backend: Any, case: Any) -> Evidence:
    """Call ``backend`` once on ``case`` and weigh its output against the spec and the catalogue of its kind."""
    catalogue = CATALOGUES[case.kind]
    try:
        output, inputs, judging = catalogue.observe(backend, case)
    except CheckFailure as failure:
        return Evidence(False, failure=str(failure))
    departs = not catalogue.correct(inputs, judging).explains(output)
    matches = {}
    for entry in catalogue.entries:
        try:
            alternatives = entry.alternatives(inputs, judging)
        except (ValueError, TypeError, IndexError, FloatingPointError):
            continue  # the reference refuses the changed call (a case the departure cannot apply to): no word
        if alternatives:
            matches[entry.name] = tuple(detail for detail, prediction in alternatives if prediction.explains(output))
    return Evidence(True, departs, matches)
