"""Naming the departures of a failed clause from the evidence of a few calls (in the runner's process).

The evidence is that of the clause's failing cases (the shrunk counterexample of each dtype that failed) and of
kqv's canonical probes beside the smallest of them (:attr:`~.entry.Catalogue.probes`). A departure is named when

- it explains at least one call whose output departs from the spec (so a correct backend never gets a name), and
- every call it applies to agrees with it: a departing output it applies to is explained by it, and so is an output
  that agrees with the spec (a backend right on a probe without a mask does not ignore the causal rule); for a
  departure with a parameter, one value of it explains them all (keys dropped past 128, on every call).

A call whose backend raised, died or returned the wrong shape says nothing either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .entry import Catalogue, Departure
from .evidence import CATALOGUES, Evidence

PROBE = "probe"  # the label of kqv's own probes; a failing case's label is its dtype


class Diagnoser(Protocol):
    def diagnose(self, case: Any) -> Evidence | None: ...


@dataclass(frozen=True)
class Named:
    """A departure that explains a clause's failures: its name, its description with the details that matched, and
    on which calls it was seen (``evidence``, in words)."""

    name: str
    description: str
    evidence: str
    dtypes: tuple[str, ...] = ()  # the labels of the failing cases it explains (their dtypes; "" for pe)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "evidence": self.evidence,
                "dtypes": list(self.dtypes)}


def name_departures(catalogue: Catalogue, calls: list[tuple[str, Evidence]]) -> list[Named]:
    """The departures of ``catalogue`` that the labelled evidence ``calls`` names (module docstring)."""
    named = []
    for entry in catalogue.entries:
        found = _weigh(entry, calls)
        if found is not None:
            named.append(found)
    return named


def _weigh(entry: Departure, calls: list[tuple[str, Evidence]]) -> Named | None:
    details: list[str] | None = None  # the values of its parameter that explain every call so far, in its order
    explained: list[str] = []  # the labels of the departing calls it explains
    for label, evidence in calls:
        if not evidence.output or entry.name not in evidence.matches:
            continue  # no output, or the departure does not apply: no word either way
        agreeing = evidence.matches[entry.name]
        details = list(agreeing) if details is None else [detail for detail in details if detail in agreeing]
        if not details:
            return None
        if evidence.departs:
            explained.append(label)
    if not explained:
        return None
    cases = tuple(label for label in explained if label != PROBE)
    return Named(entry.name, entry.describe(details or ()), _where(explained, calls), cases)


def _where(explained: list[str], calls: list[tuple[str, Evidence]]) -> str:
    """``on every failing case``, ``on the failing case at float64`` (and on kqv's probe), or ``on kqv's probe only``
    (where the failing case raised, or its own output is right: a degenerate size)."""
    failing = [label for label, evidence in calls if label != PROBE and evidence.output and evidence.departs]
    cases = [label for label in explained if label != PROBE]
    probe = " and on kqv's probe" if PROBE in explained else ""
    if cases and len(cases) == len(failing):
        return ("on every failing case" if len(cases) > 1 else "on the failing case") + probe
    if cases:
        return f"on the failing case at {', '.join(cases)}{probe}" if all(cases) else f"on a failing case{probe}"
    return "on kqv's probe only"


def diagnose(executor: Diagnoser, kind: str, declaration: Any, failing: list[tuple[str, Any]],
             cache: dict[str, Evidence | None] | None = None) -> list[Named]:
    """Name the departures behind a clause's failing cases ``(label, case)``, smallest first: each case and the
    probes beside the first is observed once where the backend runs (``executor.diagnose``), ``cache`` keeping the
    evidence of a call across clauses."""
    catalogue = CATALOGUES[kind]
    cache = {} if cache is None else cache
    calls = list(failing)
    if failing:
        calls += [(PROBE, probe) for probe in catalogue.probes(failing[0][1], declaration)]
    labelled = []
    for label, case in calls:
        key = case.to_json()
        if key not in cache:
            cache[key] = executor.diagnose(case)
        if cache[key] is not None:
            labelled.append((label, cache[key]))
    return name_departures(catalogue, labelled)
