"""Running the checks of one backend: hypothesis draws the cases, shrinks failures, and seeds the run.

For each clause the backend's kind has a check for, and each dtype the backend declares, hypothesis
draws up to ``profile.examples`` cases, then a few at tile boundaries (seeded by ``seed``, the clause
and the dtype, no example database, so a run is repeatable and each clause draws the same cases
whatever runs before it); a failure is shrunk to the smallest case and reported with the case, its
arrays and a command that replays exactly that case. A backend that raises or returns garbage fails
that clause only; the run goes on to the next clause. The backend itself runs where its executor
puts it (:mod:`kqv.conformance.executors`: a worker process by default), so that one that crashes
or hangs fails the case that caused it; hypothesis and the shrinking stay here.
"""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from collections import Counter
from typing import Any, Callable, ContextManager, NamedTuple, Protocol

import numpy as np
from hypothesis import HealthCheck, Verbosity, given, settings
from hypothesis import seed as seeded
from hypothesis.errors import Flaky

from kqv.spec import clause as lookup

from .backend import Backend
from .checks import Check, CheckFailure, Context, checks_for
from .declaration import Declaration
from .diagnosis import Evidence, diagnose
from .dtypes import bfloat16_missing
from .executors import Executor, Outcome, executor_for, where
from .executors.capture import Captured
from .kinds import KINDS, case_from_json, masked_rows
from .kinds.base import Case
from .options import DEFAULT_TIMEOUT
from .profiles import Profile, profile as lookup_profile
from .report.causes import case_size, reproduce_command
from .report.data import ClauseResult, DtypeResult, TargetReport

Progress = Callable[[str, dict], None]


class CaseSource(Protocol):
    """Where the cases of a run come from when hypothesis does not draw them (``kqv judge``: those of an export).

    ``explore`` runs one check at one dtype, as :func:`explore` does (its status may also be ``skipped``, with the
    reason as message); ``diagnosing`` holds while the diagnosis calls the backend on the failing cases and on its
    probes; ``reproduce`` is the command that shows the failures of a clause again.
    """

    def explore(self, check: Check, dtype: str | None, context: Context, captured: Captured) -> Explored: ...

    def diagnosing(self) -> ContextManager[None]: ...

    def reproduce(self, clause: str) -> str: ...

ARRAY_PRINT_LIMIT = 64  # arrays with more elements are summarised, the case rebuilds them exactly
FATAL_CASES = {"crashed": 25, "hung": 1}  # per check and dtype, shrinking included: each hang costs the timeout
TARGET_DEATHS = 200  # workers a target may lose before each check and dtype gets one fatal case only


def selected_checks(kind: str, clauses: list[str] | None) -> list[Check]:
    """The checks of ``kind``, restricted to ``clauses`` (ids); unknown ids raise a KeyError naming them."""
    checks = checks_for(kind)
    if not clauses:
        return checks
    for clause_id in clauses:
        lookup(clause_id)
    missing = [c for c in clauses if not any(check.clause == c for check in checks)]
    if missing:
        known = ", ".join(dict.fromkeys(check.clause for check in checks))
        raise KeyError(f"no {kind} check enforces {', '.join(missing)}; the {kind} clauses checked are: {known}")
    return [check for check in checks if check.clause in clauses]


def _dtype_unavailable(backend: Backend, dtype: str) -> str | None:
    if dtype == "bfloat16":
        return bfloat16_missing()
    return None


def _arrays_text(case: Case) -> str:
    build = getattr(case, "build", None)
    if build is None:
        return ""
    inputs = build()
    lines = []
    for name, value in vars(inputs).items():
        if not isinstance(value, np.ndarray):
            continue
        if value.size <= ARRAY_PRINT_LIMIT:
            text = np.array2string(value.astype(np.float64) if value.dtype != np.bool_ else value, precision=6,
                                   separator=", ", max_line_width=100)
            lines.append(f"{name} ({value.dtype}, shape {value.shape}) =\n{text}")
        else:
            lines.append(f"{name}: {value.dtype}, shape {value.shape} ({value.size} elements; rebuilt from the case)")
    return "\n".join(lines)


def case_seed(seed: int, clause: str, dtype: str | None, tiles: bool = False) -> int:
    """The seed of hypothesis for one clause at one dtype: the run's ``seed`` salted by both, so that each dtype
    draws cases of its own and a clause draws the same ones whatever else runs before it."""
    return zlib.crc32(f"{seed}:{clause}:{dtype}:{'tiles' if tiles else ''}".encode())


class Explored(NamedTuple):
    """What one check at one dtype found: ``cause`` and ``fatal`` those of the shrunk failure's
    :class:`~kqv.conformance.executors.Outcome` (the call raised, or killed or hung its worker)."""

    status: str
    message: str
    examples: int
    case: Case | None
    cause: str | None = None
    fatal: str | None = None


def explore(check: Check, executor: Executor, declaration: Declaration, dtype: str | None, profile: Profile,
            seed: int, context: Context, captured: Captured) -> Explored:
    """Run one check at one dtype: its :class:`Explored` (status, message, examples, the shrunk case or None).

    A check judged against the reference that passes draws ``profile.tile_examples`` more cases with
    a length or a width at a tile boundary (:meth:`Profile.at_tiles`, clause ``attention.tile-boundaries``).
    What each case observed goes into ``context``, what the backend printed and warned into ``captured``.
    """
    outcome = _explore(check, executor, declaration, dtype, profile, seed, context, captured)
    if outcome.status == "passed" and check.numeric and profile.tile_examples and not profile.tiles:
        tiles = _explore(check, executor, declaration, dtype, profile.at_tiles(), seed, context, captured)
        return tiles._replace(examples=outcome.examples + tiles.examples)
    return outcome


def _explore(check: Check, executor: Executor, declaration: Declaration, dtype: str | None, profile: Profile,
             seed: int, context: Context, captured: Captured) -> Explored:
    strategy = check.strategy(declaration, dtype, profile)
    failures: list[tuple[Case, Outcome]] = []
    examples = [0]
    fatal: dict[str, Outcome] = {}  # the cases that killed or hung the worker, by their JSON
    limits = FATAL_CASES if executor.deaths < TARGET_DEATHS else {how: 1 for how in FATAL_CASES}

    def attempt(case):
        key = case.to_json()
        if _exhausted(fatal, limits) and key not in fatal:
            return  # enough workers lost: the shrinking stops at the smallest fatal case so far
        examples[0] += 1
        outcome = fatal.get(key) or absorbed(executor.run(check, case), context, captured)
        if outcome.fatal:
            fatal[key] = outcome
        if outcome.status == "failed":
            failures.append((case, outcome))
            raise outcome.failure()

    test = seeded(case_seed(seed, check.clause, dtype, profile.tiles))(settings(
        max_examples=check.examples_in(profile), deadline=None, database=None, derandomize=False,
        suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, print_blob=False,
        report_multiple_bugs=False,
    )(given(strategy)(attempt)))
    try:
        test()
    except CheckFailure:
        case, outcome = failures[-1]  # hypothesis replays the shrunk case last
        return Explored("failed", outcome.message + _stopped(fatal, limits), examples[0], case, outcome.cause,
                        outcome.fatal)
    except Flaky:
        case, outcome = failures[-1]
        return Explored("failed", f"{outcome.message} (this failure did not repeat when the case was replayed: the "
                        f"backend is not deterministic, or depends on earlier calls)", examples[0], case,
                        outcome.cause, outcome.fatal)
    return Explored("passed", "", examples[0], None)


def _exhausted(fatal: dict[str, Outcome], limits: dict[str, int]) -> bool:
    return any(sum(o.fatal == how for o in fatal.values()) >= limit for how, limit in limits.items())


def _stopped(fatal: dict[str, Outcome], limits: dict[str, int]) -> str:
    if not _exhausted(fatal, limits):
        return ""
    if any(o.fatal == "hung" for o in fatal.values()):
        return " (not shrunk further: each try of a case that hangs costs the whole timeout)"
    return f" (shrinking stopped after {len(fatal)} cases that killed the worker process: a smaller case may show " \
           f"it too)"


def replay_case(check: Check, executor: Executor, case: Case, context: Context, captured: Captured) -> Explored:
    """Run one check on one given case: its :class:`Explored` (the case kept when it fails)."""
    outcome = absorbed(executor.run(check, case), context, captured)
    if outcome.status == "failed":
        return Explored("failed", outcome.message, 1, case, outcome.cause, outcome.fatal)
    return Explored("passed", "", 1, None)


def absorbed(outcome: Outcome, context: Context, captured: Captured) -> Outcome:
    """The outcome, once what it observed is in ``context`` and what it printed in ``captured``."""
    for name, records in outcome.observations.items():
        context.observations.setdefault(name, []).extend(records)
    captured.counts.update(outcome.captured.counts)
    return outcome


def _conventions(backend: Backend, context: Context) -> dict[str, dict[str, str]]:
    """The conventions the backend's kind reports (declared, observed or by default), then the adapter's."""
    declaration = backend.declaration
    conventions: dict[str, dict[str, str]] = {}
    reported = KINDS[backend.kind].conventions
    if "masked_rows" in reported:
        conventions["masked_rows"] = _masked_rows(declaration.masked_rows,
                                                  masked_rows.described(context, declaration.masked_rows))
    if "causal_alignment" in reported:
        conventions["causal_alignment"] = {"value": declaration.alignment,
                                           "source": "declared" if declaration.causal_alignment else "default"}
    for name, value in declaration.conventions:
        conventions[name] = {"value": value, "source": "adapter"}
    return conventions


def _masked_rows(declared: str | None, seen: str | None) -> dict[str, str]:
    """The fully-masked-row convention the report shows: what the rows that keep no key returned whenever one was
    drawn (under a declared departure too), the declaration when they followed it, ``not observed`` when no example
    drew such a row."""
    if declared is not None and seen in (None, declared):
        return {"value": declared, "source": "declared"}
    if seen is None:
        return {"value": "not observed", "source": "undeclared"}
    return {"value": seen, "source": "observed" if declared is None else f"observed; declared {declared}"}


def run_backend(backend: Backend, profile: str | Profile = "ci", seed: int = 0, clauses: list[str] | None = None,
                progress: Progress | None = None, origin: str | None = None, replay: Case | None = None,
                isolation: bool | None = None, timeout: float = DEFAULT_TIMEOUT,
                executor: Executor | None = None, source: CaseSource | None = None) -> TargetReport:
    """Check ``backend`` clause by clause and return its :class:`TargetReport`.

    ``origin`` is how the target was named on the command line (for the reproduce command);
    ``replay`` runs the selected checks on that one case instead of drawing cases. ``isolation``
    runs the backend in a worker process (None: wherever the system allows it), with ``timeout``
    seconds per call (0: none); without it, in this process. An ``executor`` given is used (and left
    open) instead. A ``source`` gives the cases of each check and dtype instead of hypothesis.
    """
    if executor is not None:
        return _run(backend, executor, profile, seed, clauses, progress, origin, replay, source)
    executor = executor_for(backend, isolation, timeout)
    try:
        return _run(backend, executor, profile, seed, clauses, progress, origin, replay, source)
    finally:
        executor.close()


def _run(backend: Backend, executor: Executor, profile: str | Profile, seed: int, clauses: list[str] | None,
         progress: Progress | None, origin: str | None, replay: Case | None,
         source: CaseSource | None = None) -> TargetReport:
    profile = lookup_profile(profile) if isinstance(profile, str) else profile
    checks = selected_checks(backend.kind, clauses)
    origin = origin or backend.name
    declaration = backend.declaration
    profile = profile.budgeted(declaration.shapes, seed)
    notify = progress or (lambda event, info: None)
    notify("target", {"target": backend.name, "kind": backend.kind, "checks": len(checks)})
    started = time.perf_counter()
    results: list[ClauseResult] = []
    contexts: dict[str, Context] = {}
    evidence: dict[str, Evidence | None] = {}  # of each call the diagnosis made, by case: probes serve many clauses
    for check in checks:
        context = contexts.setdefault(check.clause, Context())
        captured = Captured()
        result = ClauseResult(check.clause, [])
        reason = check.skip_reason(declaration)
        dtypes: list[str | None] = list(declaration.dtypes) if check.per_dtype else [None]
        if replay is not None:
            dtypes = [getattr(replay, "dtype", None)] if check.per_dtype else [None]
        for dtype in dtypes:
            clock = time.perf_counter()
            missing = reason or (dtype and _dtype_unavailable(backend, dtype))
            if missing:
                result.dtypes.append(DtypeResult(dtype, "skipped", missing))
                continue
            if replay is not None:
                found = replay_case(check, executor, replay, context, captured)
            elif source is not None:
                found = source.explore(check, dtype, context, captured)
                if found.status == "skipped":
                    result.dtypes.append(DtypeResult(dtype, "skipped", found.message))
                    continue
            else:
                found = explore(check, executor, declaration, dtype, profile, seed, context, captured)
            status, message, case = found.status, found.message, found.case
            known = declaration.expected_failure(check.clause, dtype) if dtype else \
                next((f for f in declaration.expected_failures if f.clause == check.clause), None)
            if known is not None:
                status = "xfailed" if status == "failed" else "xpassed"
                message = f"known departure: {known.reason}" + (f"; {message}" if message else "")
            result.dtypes.append(DtypeResult(dtype, status, message, found.examples, time.perf_counter() - clock,
                                             case.to_json() if case is not None else None, found.cause, found.fatal))
            if case is not None and result.counterexample is None:
                result.counterexample = f"{case.describe()}\n{_arrays_text(case)}".strip()
                result.reproduce = source.reproduce(check.clause) if source is not None else \
                    reproduce_command(origin, backend.kind, check.clause, case.to_json())
        with source.diagnosing() if source is not None else contextlib.nullcontext():
            result.departures = _diagnosed(executor, backend, result, evidence)
        if check.finish is not None and replay is None:
            trouble = check.finish(context, declaration)
            if trouble:
                message, cases = trouble
                known = next((f for f in declaration.expected_failures if f.clause == check.clause), None)
                status = "failed" if known is None else "xfailed"
                message = message if known is None else f"known departure: {known.reason}; {message}"
                result.dtypes.append(DtypeResult(None, status, message))
                result.counterexample = "\n\n".join(f"{case.describe()}\n{_arrays_text(case)}".strip() for case in cases)
                result.reproduce = source.reproduce(check.clause) if source is not None else \
                    f"kqv check {origin} --kind {backend.kind} --clause {check.clause} --profile {profile.name} " \
                    f"--seed {seed}"
        result.message = summary(result)
        result.printed = dict(captured.counts)
        results.append(_merge(results, result))
        notify("clause", {"target": backend.name, "clause": check.clause, "status": result.status})
    merged = link_foundations(backend.kind, list({r.clause: r for r in results}.values()))
    return TargetReport(backend.name, backend.kind, merged, _conventions(backend, contexts.get(
        masked_rows.CLAUSE, Context())), backend.description, declaration.dtypes, time.perf_counter() - started,
        declaration.variants, where(executor), origin)


def _diagnosed(executor: Executor, backend: Backend, result: ClauseResult,
               evidence: dict[str, Evidence | None]) -> list[dict[str, Any]]:
    """The departures that explain this check's failures (:mod:`kqv.conformance.diagnosis`), as report data: the
    shrunk case of each dtype that failed (smallest first), unless its call killed or hung the worker."""
    failing = sorted((d for d in result.dtypes if d.status == "failed" and d.case and not d.fatal),
                     key=lambda d: case_size(json.loads(d.case)))
    if not failing:
        return []
    cases = [(d.dtype or "", case_from_json(d.case)) for d in failing]  # labelled by dtype (none for pe)
    return [named.to_dict() for named in diagnose(executor, backend.kind, backend.declaration, cases, evidence)]


def link_foundations(kind: str, results: list[ClauseResult]) -> list[ClauseResult]:
    """Mark each failure that may only follow from a failed foundation clause of ``kind`` (``may_follow_from``)."""
    foundations = {check.clause for check in checks_for(kind) if check.foundation}
    broken = [r.clause for r in results if r.clause in foundations and r.status == "failed"]
    for result in results:
        result.may_follow_from = broken if result.status == "failed" and result.clause not in foundations else []
    return results


def _merge(results: list[ClauseResult], result: ClauseResult) -> ClauseResult:
    """Two checks of one clause make one result."""
    earlier = next((r for r in results if r.clause == result.clause), None)
    if earlier is None:
        return result
    earlier.dtypes.extend(result.dtypes)
    earlier.counterexample = earlier.counterexample or result.counterexample
    earlier.reproduce = earlier.reproduce or result.reproduce
    names = {named["name"] for named in earlier.departures}
    earlier.departures += [named for named in result.departures if named["name"] not in names]
    earlier.printed = dict(Counter(earlier.printed) + Counter(result.printed))
    earlier.message = summary(earlier)
    return earlier


def summary(result: ClauseResult) -> str:
    """The one-line message of a clause: the departures that explain it, then what failed, was expected to fail or
    passed, and what was skipped, by dtype."""
    parts = [f"the output matches \"{named['name']}\" ({named['description']}), {named['evidence']}"
             for named in result.departures]
    for status in ("failed", "xfailed", "xpassed"):
        for outcome in (d for d in result.dtypes if d.status == status):
            parts.append(f"{status}{' at ' + outcome.dtype if outcome.dtype else ''}: {outcome.message}")
    ran = [d for d in result.dtypes if d.status == "passed"]
    if ran:
        dtypes = ", ".join(d.dtype for d in ran if d.dtype)
        parts.append(f"passed {sum(d.examples for d in ran)} examples" + (f" ({dtypes})" if dtypes else ""))
    for outcome in (d for d in result.dtypes if d.status == "skipped"):
        parts.append(f"skipped{' at ' + outcome.dtype if outcome.dtype else ''}: {outcome.message}")
    return "; ".join(dict.fromkeys(parts))
