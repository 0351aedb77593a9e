"""Conformance reports as plain data: one result per clause and target, and their JSON form.

Every renderer (``kqv.conformance.report.terminal``, ``.markdown``, the docs' ``kqv-report``
directive) imports this module; it imports none of them.

Statuses: ``passed``; ``failed`` (the backend breaks the clause, with the shrunk counterexample and
a command that reproduces it); ``skipped`` (the backend does not declare a feature the check needs,
with the reason); ``xfailed`` (a declared known departure that did show, with its reason) and
``xpassed`` (a declared known departure that did not show in this run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kqv.spec import CLAUSES

from ..links import clause_url
from .causes import RootCause, root_causes

STATUSES = ("passed", "failed", "skipped", "xfailed", "xpassed")
SYMBOLS = {"passed": "pass", "failed": "FAIL", "skipped": "skip", "xfailed": "xfail", "xpassed": "xpass"}


@dataclass
class DtypeResult:
    """The outcome of one clause at one dtype (``dtype`` None for ``pe``, whose call takes no dtype)."""

    dtype: str | None
    status: str
    message: str
    examples: int = 0
    seconds: float = 0.0
    case: str | None = None  # the shrunk counterexample, as Case.to_json()
    cause: str | None = None  # the call itself failed (raised, or killed or hung its worker): what happened
    fatal: str | None = None  # "crashed" or "hung": the case took its worker down

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "status": self.status, "message": self.message, "examples": self.examples,
                "seconds": round(self.seconds, 3), "case": None if self.case is None else json.loads(self.case),
                "cause": self.cause}


def combine(statuses: list[str]) -> str:
    """A clause fails if it fails at any dtype; otherwise xfailed, then passed or xpassed; skipped only if all are."""
    for status in ("failed", "xfailed"):
        if status in statuses:
            return status
    ran = [s for s in statuses if s != "skipped"]
    if not ran:
        return "skipped"
    return "xpassed" if "xpassed" in ran else "passed"


@dataclass
class ClauseResult:
    """One clause of one target, over the dtypes it was checked at."""

    clause: str
    dtypes: list[DtypeResult]
    message: str = ""
    counterexample: str | None = None
    reproduce: str | None = None
    may_follow_from: list[str] = field(default_factory=list)  # failed foundation clauses that may explain this one
    printed: dict[str, int] = field(default_factory=dict)  # what the backend printed or warned, and how often
    # the named departures that explain its failures: {"name", "description", "evidence", "dtypes"}
    departures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return combine([d.status for d in self.dtypes])

    @property
    def seconds(self) -> float:
        return sum(d.seconds for d in self.dtypes)

    def to_dict(self) -> dict[str, Any]:
        spec = CLAUSES[self.clause]
        return {"clause": self.clause, "status": self.status, "message": self.message, "title": spec.title,
                "statement": spec.statement, "link": clause_url(self.clause),
                "dtypes": [d.to_dict() for d in self.dtypes], "counterexample": self.counterexample,
                "reproduce": self.reproduce, "may_follow_from": self.may_follow_from,
                "printed": [{"text": text, "count": count} for text, count in self.printed.items()],
                "departures": self.departures, "seconds": round(self.seconds, 3)}


@dataclass
class CaseProblem:
    """An output of one case of an export that is missing, malformed or not a number (``kqv judge``), and the clauses
    whose examples call the case."""

    case: str
    problem: str
    clauses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"case": self.case, "problem": self.problem, "clauses": self.clauses}


@dataclass
class TargetReport:
    """The clauses of one target (a backend of one kind)."""

    target: str
    kind: str
    clauses: list[ClauseResult]
    conventions: dict[str, dict[str, str]] = field(default_factory=dict)
    description: str = ""
    dtypes: tuple[str, ...] = ()
    seconds: float = 0.0
    variants: tuple[str, ...] = ()  # the variants of the sdpa contract the backend declares
    ran_in: str = ""  # "a worker process", or "this process" and why
    origin: str = ""  # how the target was named on the command line (for the commands that reproduce a case)
    problems: list[CaseProblem] = field(default_factory=list)  # kqv judge: the outputs missing or malformed, by case

    @property
    def conformant(self) -> bool:
        return all(result.status != "failed" for result in self.clauses)

    def counts(self) -> dict[str, int]:
        return {status: sum(r.status == status for r in self.clauses) for status in STATUSES}

    def departures(self) -> list[dict[str, Any]]:
        """The named departures of its failed clauses, each once: ``{"name", "description", "clauses"}``."""
        found: dict[str, dict[str, Any]] = {}
        for result in (r for r in self.clauses if r.status == "failed"):
            for named in result.departures:
                entry = found.setdefault(named["name"], {"name": named["name"], "description": named["description"],
                                                         "clauses": []})
                entry["clauses"].append(result.clause)
        return list(found.values())

    def root_causes(self) -> list[RootCause]:
        """Its failures grouped by cause (:mod:`.causes`), the one affecting the most clauses first."""
        return root_causes(self)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "conformant": self.conformant,
                "description": self.description, "dtypes": list(self.dtypes), "variants": list(self.variants),
                "conventions": self.conventions, "ran_in": self.ran_in,
                "counts": self.counts(), "seconds": round(self.seconds, 3),
                "departures": self.departures(), "root_causes": [cause.to_dict() for cause in self.root_causes()],
                "clauses": [result.to_dict() for result in self.clauses],
                "problems": [problem.to_dict() for problem in self.problems]}


@dataclass
class Unavailable:
    """A built-in backend that cannot run here, and why."""

    target: str
    kind: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"target": self.target, "kind": self.kind, "reason": self.reason}


@dataclass
class Report:
    """Every target of one run."""

    targets: list[TargetReport]
    profile: str = "ci"
    seed: int = 0
    unavailable: list[Unavailable] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # stale entries of a known-deviations file, ...

    @property
    def conformant(self) -> bool:
        return all(target.conformant for target in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {"conformant": self.conformant, "profile": self.profile, "seed": self.seed,
                "versions": self.versions, "targets": [t.to_dict() for t in self.targets],
                "unavailable": [u.to_dict() for u in self.unavailable], "warnings": self.warnings}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
