"""One ``kqv check`` session: which backends to run (validated first), then the run itself.

Everything the user can get wrong (a target that does not load or whose signature cannot take the
calls of its kind, an unknown clause id, a malformed replay case, a bad known-deviations file) is found by
:func:`plan` and raised as :class:`UsageError` or ``LoadError`` before any
check runs, so the command reports it with exit status 2; errors after that are kqv's own bugs and
are not disguised as usage errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kqv.spec import clause as lookup_clause

from .backend import Backend, Recipe
from .backends import BUILTINS, builtin
from .checks import checks_for
from .kinds import Case, case_from_json
from .loading import LoadError, resolve
from .executors import isolation_available
from .expected_failures import ExpectedFailures, ExpectedFailuresError, apply, load, target_names
from .options import DEFAULT_TIMEOUT, command_words, with_overrides
from .profiles import profile as lookup_profile
from .report.data import Report, Unavailable
from .runner import Progress, run_backend, selected_checks


class UsageError(Exception):
    """A request that cannot be run as given (exit status 2)."""


@dataclass
class Plan:
    backends: list[tuple[Backend, str]]  # with the words that name it on a command line
    profile: str
    seed: int
    clauses: list[str] | None = None
    replay: Case | None = None
    unavailable: list[Unavailable] = field(default_factory=list)
    isolation: bool | None = None  # None: wherever the system allows it
    timeout: float = DEFAULT_TIMEOUT
    jobs: int = 1  # driver processes checking clauses at once
    expected: ExpectedFailures | None = None  # the entries of a known-deviations file (--expected-failures)

    def run(self, progress: Progress | None = None) -> Report:
        from .api import versions
        from .jobs import run_jobs

        if self.jobs > 1 and self.replay is None:
            targets = run_jobs(self.backends, self.profile, self.seed, self.clauses, self.jobs, progress,
                               self.isolation, self.timeout)
        else:
            targets = [run_backend(backend, self.profile, self.seed, self.clauses, progress, origin, self.replay,
                                   self.isolation, self.timeout)
                       for backend, origin in self.backends]
        report = Report(targets, "replay" if self.replay else self.profile, self.seed, self.unavailable,
                        versions(backend for backend, _ in self.backends))
        if self.expected is not None:
            apply(report, self.expected, [target_names(backend) for backend, _ in self.backends])
        return report


def _command_words(target: str, overrides: dict[str, Any], arrays: str, backward: str | None = None) -> str:
    if backward is not None:  # --backward MODULE:FUNCTION says backward=True itself
        overrides = {name: value for name, value in overrides.items() if name != "backward"}
    words = [target, *command_words(overrides)]
    if backward is not None:
        words += ["--backward", backward]
    if arrays != "numpy":
        words += ["--arrays", arrays]
    return " ".join(words)


def plan(targets: list[str], *, kind: str | None = None, profile: str = "ci", seed: int = 0,
         clauses: list[str] | None = None, overrides: dict[str, Any] | None = None, arrays: str = "numpy",
         replay: str | None = None, isolation: bool | None = None, timeout: float = DEFAULT_TIMEOUT,
         jobs: int = 1, expected_failures: str | None = None, backward: str | None = None) -> Plan:
    """Resolve and validate a session; raises :class:`UsageError` or ``LoadError`` naming the problem.

    ``backward`` names the backward callable (``module:function``) of each function target."""
    overrides = overrides or {}
    if backward is not None and not targets:
        raise UsageError(f"--backward {backward}: a backward callable needs the function TARGET it differentiates, "
                         f"given first: kqv check TARGET --backward {backward}")
    for clause_id in clauses or ():
        try:
            lookup_clause(clause_id)
        except KeyError as error:
            raise UsageError(f"--clause: {error.args[0]}") from None
    case = None
    if replay is not None:
        try:
            case = case_from_json(replay)
        except (ValueError, TypeError) as error:
            raise UsageError(f"--replay: {error}") from None
        if kind is not None and kind != case.kind:
            raise UsageError(f"--replay: the case is a {case.kind} case, not {kind}")
        kind = case.kind
        if not clauses or len(clauses) != 1:
            raise UsageError("--replay needs exactly one --clause")
    chosen: list[tuple[Backend, str]] = []
    unavailable: list[Unavailable] = []
    if not targets:
        if "device" in overrides:
            raise UsageError("--device applies to a function TARGET, not to the built-in backends")
        for name in BUILTINS:
            for backend_kind, backend in builtin(name).items():
                if kind and backend_kind != kind:
                    continue
                missing = backend.unavailable()
                if missing:
                    unavailable.append(Unavailable(name, backend_kind, missing))
                    continue
                try:
                    backend = dataclasses.replace(with_overrides(backend, overrides),
                                                  recipe=Recipe(name, backend_kind, overrides, "numpy"))
                except (TypeError, ValueError) as error:
                    raise UsageError(str(error)) from None
                chosen.append((backend, _command_words(name, overrides, "numpy")))
    else:
        for target in targets:
            for backend in resolve(target, kind, overrides, arrays, backward):
                chosen.append((backend, _command_words(target, overrides, arrays, backward)))
    if clauses:
        usable = []
        for backend, origin in chosen:
            try:
                selected_checks(backend.kind, clauses)
            except KeyError as error:
                if targets:
                    raise UsageError(error.args[0]) from None
                enforced = {check.clause for check in checks_for(backend.kind)}
                not_enforced = [c for c in clauses if c not in enforced]
                unavailable.append(Unavailable(backend.name, backend.kind,
                                               f"--clause {', '.join(not_enforced)} has no {backend.kind} check"))
                continue
            usable.append((backend, origin))
        if not usable:
            raise UsageError(f"no backend here has a check for {', '.join(clauses)}")
        chosen = usable
    try:
        lookup_profile(profile)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if isolation:
        missing = isolation_available()
        if missing:
            raise UsageError(f"--isolation: {missing}")
    if timeout < 0:
        raise UsageError(f"--timeout: expected a number of seconds >= 0, got {timeout!r}")
    if jobs < 1:
        raise UsageError(f"--jobs: expected an integer >= 1, got {jobs!r}")
    try:
        expected = None if expected_failures is None else load(expected_failures)
    except ExpectedFailuresError as error:
        raise UsageError(f"--expected-failures: {error}") from None
    return Plan(chosen, profile, seed, clauses, case, unavailable, isolation, timeout, jobs, expected)


def run_session(targets: list[str], progress: Progress | None = None, **options: Any) -> Report:
    """:func:`plan` then :meth:`Plan.run`."""
    return plan(targets, **options).run(progress)


__all__ = ["LoadError", "Plan", "UsageError", "plan", "run_session"]
