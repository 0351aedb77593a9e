"""One root cause, one entry: the failures of a target grouped by what caused them.

Each failure of a clause at a dtype belongs to one root cause, the first of these that fits it:

1. the call itself failed: the backend raised (the same exception type and message, numbers aside), returned
   something other than an array, killed its worker or hung (``DtypeResult.cause``);
2. a named departure explains the failing case (``ClauseResult.departures``, :mod:`kqv.conformance.diagnosis`):
   the failures the same departures explain are one cause;
3. the clause may only follow from a failed foundation clause (``may_follow_from``): it joins that clause's cause;
4. otherwise the clause is its own cause.

Every root cause lists the clauses and dtypes it affects, its smallest counterexample (fewest elements, by the
sizes of the case) and the command that reproduces it. This module reads the report's data only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

NUMBER = re.compile(r"\d+(\.\d+)?(e[-+]?\d+)?")
NOT_SIZES = ("seed", "scale")  # integers of a case that are not sizes


def case_size(case: dict[str, Any]) -> int:
    """How large a case is (a JSON object of ``Case.to_json``): the sum of its sizes (``L``, ``S``, ``E``, the batch
    dims, ``d_model``, ...), its seed and scale aside."""
    total = 0
    for name, value in case.items():
        if name in NOT_SIZES or isinstance(value, bool):
            continue
        if isinstance(value, int):
            total += value
        elif isinstance(value, list):
            total += sum(v for v in value if isinstance(v, int) and not isinstance(v, bool))
    return total


def reproduce_command(origin: str, kind: str, clause: str, case_json: str) -> str:
    """The command that replays one case of one clause."""
    return f"kqv check {origin} --kind {kind} --clause {clause} --replay '{case_json}'"


@dataclass
class RootCause:
    """One cause and the failures it explains, ``(clause, dtype)`` in the report's order."""

    cause: str
    kind: str  # "raised" (the call failed), "departure", "foundation" or "clause"
    departures: list[str] = field(default_factory=list)  # the names of the departures of a "departure" cause
    failures: list[tuple[str, str | None]] = field(default_factory=list)
    case: dict[str, Any] | None = None  # the smallest counterexample, as its JSON object
    clause: str | None = None  # the clause whose check failed on it
    counterexample: str | None = None
    reproduce: str | None = None

    @property
    def clauses(self) -> list[str]:
        return list(dict.fromkeys(clause for clause, _ in self.failures))

    @property
    def dtypes(self) -> list[str]:
        return list(dict.fromkeys(dtype for _, dtype in self.failures if dtype))

    def to_dict(self) -> dict[str, Any]:
        return {"cause": self.cause, "kind": self.kind, "departures": self.departures, "clauses": self.clauses,
                "dtypes": self.dtypes,
                "failures": [{"clause": clause, "dtype": dtype} for clause, dtype in self.failures],
                "counterexample": self.counterexample, "case": self.case, "clause": self.clause,
                "reproduce": self.reproduce}


def _departure_text(named: list[dict[str, Any]]) -> str:
    names = " or ".join(f"\"{n['name']}\"" for n in named)
    return f"the output matches {names}: " + "; ".join(n["description"] for n in named)


def _key(result: Any, outcome: Any) -> tuple[str, str, str] | None:
    """``(kind, grouping key, words)`` of a failure, or None when only its clause explains it."""
    if outcome.cause:
        return "raised", NUMBER.sub("N", outcome.cause), outcome.cause
    named = [n for n in result.departures if (outcome.dtype or "") in n.get("dtypes", [])]
    if named:
        return "departure", "|".join(n["name"] for n in named), _departure_text(named)
    return None


def root_causes(target: Any) -> list[RootCause]:
    """The root causes of ``target``'s failures (a :class:`~.data.TargetReport`), the one affecting the most
    clauses first."""
    causes: dict[tuple[str, str], RootCause] = {}
    placed: dict[tuple[str, str | None], tuple[str, str]] = {}  # the cause of each (clause, dtype) failure
    pending = []
    for result in (r for r in target.clauses if r.status == "failed"):
        for outcome in (d for d in result.dtypes if d.status == "failed"):
            key = _key(result, outcome)
            if key is None and result.may_follow_from:
                pending.append((result, outcome))
                continue
            key = key or ("clause", result.clause, f"{result.clause} fails: {outcome.message}")
            placed[result.clause, outcome.dtype] = _add(causes, key, result, outcome)
    for result, outcome in pending:  # a failure that may follow from a foundation's, at the same dtype, joins it
        home = next((placed[f, outcome.dtype] for f in result.may_follow_from if (f, outcome.dtype) in placed), None)
        if home is None:
            _add(causes, ("clause", result.clause, f"{result.clause} fails: {outcome.message}"), result, outcome)
            continue
        cause = causes[home]
        if cause.kind == "clause":
            cause.kind = "foundation"
            cause.cause += " (a foundation clause: the failures of other clauses may follow from it)"
        cause.failures.append((result.clause, outcome.dtype))
    ordered = sorted(causes.values(), key=lambda c: -len(c.clauses))  # stable: report order among equals
    for cause in ordered:
        _smallest(cause, target)
    return ordered


def _add(causes: dict, key: tuple[str, str, str], result: Any, outcome: Any) -> tuple[str, str]:
    kind, group, words = key
    cause = causes.setdefault((kind, group), RootCause(words, kind, group.split("|") if kind == "departure" else []))
    cause.failures.append((result.clause, outcome.dtype))
    return kind, group


def _smallest(cause: RootCause, target: Any) -> None:
    """Set the cause's counterexample: the smallest failing case among its failures, with its reproducer."""
    by_clause = {r.clause: r for r in target.clauses}
    candidates = []
    for clause, dtype in cause.failures:
        result = by_clause[clause]
        for outcome in result.dtypes:
            if outcome.status == "failed" and outcome.dtype == dtype and outcome.case:
                candidates.append((case_size(json.loads(outcome.case)), clause, outcome.case))
    if candidates:
        _, clause, case_json = min(candidates, key=lambda item: item[0])
        from ..kinds import case_from_json

        cause.case, cause.clause = json.loads(case_json), clause
        cause.counterexample = case_from_json(case_json).describe()
        cause.reproduce = reproduce_command(target.origin or target.target, target.kind, clause, case_json)
        return
    first = by_clause[cause.failures[0][0]]  # failures across examples (a convention): the clause's own reproducer
    cause.clause, cause.counterexample, cause.reproduce = first.clause, first.counterexample, first.reproduce


def affects(cause: RootCause) -> str:
    """The failures of a cause in words, the clauses grouped by the dtypes they fail at:
    ``20 clauses at float16: mask.bool, ...`` or ``10 clauses at float64, float32: ...; at float32: attention.sdpa``."""
    dtypes: dict[str, list[str]] = {}
    for clause, dtype in cause.failures:
        dtypes.setdefault(clause, []).extend([dtype] if dtype else [])
    groups: dict[tuple[str, ...], list[str]] = {}
    for clause, found in dtypes.items():
        groups.setdefault(tuple(found), []).append(clause)
    count = f"{len(dtypes)} clause{'s' if len(dtypes) > 1 else ''}"
    if list(groups) == [()]:  # no dtypes (pe)
        return f"{count}: {', '.join(groups[()])}"
    return f"{count} " + "; ".join(f"at {', '.join(found)}: {', '.join(clauses)}" for found, clauses in groups.items())


def headline(target: Any) -> str:
    """``2 root causes, 22 clauses failed``: the root causes first, then the clauses."""
    causes = len(target.root_causes())
    failed = sum(result.status == "failed" for result in target.clauses)
    return f"{causes} root cause{'s' if causes != 1 else ''}, {failed} clause{'s' if failed != 1 else ''} failed"
