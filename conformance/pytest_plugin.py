"""The pytest plugin of kqv (entry point ``pytest11``): one test per clause and target.

Inert unless ``--kqv-target`` is given. Then ``pytest --kqv-target module:function --kqv-kind sdpa``
(in any directory, one without test files too) adds a test per clause the target's kind has, named
``kqv::<target>::<kind>::<clause id>``; a failure shows the clause, the shrunk counterexample and
the command that replays it; an unsupported feature is a skip and a declared known departure an
xfail, each with its reason. JUnit XML, ``-k``, ``-x`` and the rest of pytest work as usual, and so
does pytest-xdist (``pytest -n auto``): each clause draws its cases from the seed, the clause and the
dtype alone, so a test gives the same verdict in whichever worker runs it, and the conventions each
test observed travel to the controller's summary as a user property; each of N workers may use
``cores // N`` threads (:mod:`kqv.conformance.threads`). Each backend runs in a worker
process forked for the session (``--kqv-no-isolation``: in pytest's own process).
"""

from __future__ import annotations

import json
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import RUN_OPTIONS

    group = parser.getgroup("kqv", "kqv conformance checks (inert unless --kqv-target is given)")
    group.addoption("--kqv-target", action="append", default=[], metavar="TARGET",
                    help="a built-in backend, module:function or path/to/file.py:function to check (repeatable)")
    for option in RUN_OPTIONS.values():
        if option.name != "jobs":  # pytest-xdist spreads the clauses: pytest -n auto
            option.add_to(group, prefix="--kqv-")
    group.addoption("--kqv-declare", action="append", default=[], metavar="NAME=VALUE",
                    help="a declaration field, e.g. masked_rows=nan, dtypes=float32,float16, float_mask=false, gqa=true "
                         "(repeatable; the fields of kqv.conformance.Declaration)")


def _declarations(config: pytest.Config) -> dict[str, Any]:
    from .options import OptionError, from_assignments

    try:
        return from_assignments(config.getoption("kqv_declare"))
    except OptionError as error:
        raise pytest.UsageError(f"--kqv-declare: {error}") from None


def pytest_configure(config: pytest.Config) -> None:
    targets = config.getoption("kqv_target")
    if not targets:
        return
    import os

    from .loading import LoadError
    from .threads import limit, share

    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if workers.isdigit():  # in a worker of pytest -n N: its share of the cores, as under kqv check --jobs N
        limit(share(int(workers)))
    from .session import UsageError, plan

    try:
        config._kqv_plan = plan(targets, kind=config.getoption("kqv_kind"), profile=config.getoption("kqv_profile"),
                                seed=config.getoption("kqv_seed"), overrides=_declarations(config),
                                arrays=config.getoption("kqv_arrays"), isolation=config.getoption("kqv_isolation"),
                                timeout=config.getoption("kqv_timeout"),
                                expected_failures=config.getoption("kqv_expected_failures"))
    except (UsageError, LoadError) as error:
        raise pytest.UsageError(f"kqv: {error}") from None
    config._kqv_reports = []
    config.pluginmanager.register(_Conventions(config), "kqv-conventions")


class _Conventions:
    """Gathers the conventions each clause's test reports (here or in a pytest-xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == "kqv_conventions" and report.when == "call":
                self.config._kqv_reports.append(json.loads(value))


def _executor(config: pytest.Config, backend):
    """One executor (one worker process) per backend for the whole session, not one per clause."""
    from .executors import executor_for

    executors = config.__dict__.setdefault("_kqv_executors", {})
    if id(backend) not in executors:
        executors[id(backend)] = executor_for(backend, config._kqv_plan.isolation, config._kqv_plan.timeout)
    return executors[id(backend)]


def pytest_unconfigure(config: pytest.Config) -> None:
    for executor in config.__dict__.get("_kqv_executors", {}).values():
        executor.close()


class ClauseFailed(Exception):
    """A clause the target breaks; its message is the whole failure report."""


class ClauseItem(pytest.Item):
    """The checks of one clause for one target."""

    def __init__(self, *, backend, origin: str, clause: str, plan, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backend, self.origin, self.clause, self.plan = backend, origin, clause, plan
        self.user_properties.append(("clause", clause))

    def runtest(self) -> None:
        from kqv.spec import CLAUSES

        from .links import clause_url
        from .runner import run_backend

        report = run_backend(self.backend, self.plan.profile, self.plan.seed, [self.clause], origin=self.origin,
                             executor=_executor(self.config, self.backend))
        if self.plan.expected is not None:  # the entries of --kqv-expected-failures (stale ones are not reported here)
            from .expected_failures import apply, target_names
            from .report.data import Report

            apply(Report([report]), self.plan.expected, [target_names(self.backend)])
        # a property travels with the test's report, to pytest-xdist's controller too
        self.user_properties.append(("kqv_conventions", json.dumps(
            {"target": report.target, "kind": report.kind, "conventions": report.conventions})))
        result = report.clauses[0]
        if result.status == "skipped":
            pytest.skip(result.message)
        if result.status == "xfailed":
            pytest.xfail(result.message)
        if result.status == "failed":
            spec = CLAUSES[self.clause]
            parts = [f"{self.clause}: {spec.title}", spec.statement, clause_url(self.clause), "", result.message]
            if result.counterexample:
                parts += ["", "counterexample (shrunk):", result.counterexample]
            if result.reproduce:
                parts += ["", "reproduce:", result.reproduce]
            raise ClauseFailed("\n".join(parts))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ClauseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"kqv {self.backend.name} ({self.backend.kind}): {self.clause}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    plan = getattr(config, "_kqv_plan", None)
    if plan is None:
        return
    from .runner import selected_checks

    for backend, origin in plan.backends:
        clauses = list(dict.fromkeys(check.clause for check in selected_checks(backend.kind, None)))
        for clause in clauses:
            items.append(ClauseItem.from_parent(session, name=f"kqv::{backend.name}::{backend.kind}::{clause}",
                                                backend=backend, origin=origin, clause=clause, plan=plan))


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    reports = getattr(config, "_kqv_reports", None)
    if not reports:
        return
    terminalreporter.section("kqv conventions")
    seen: dict[tuple[str, str], dict] = {}
    for report in reports:
        found = seen.setdefault((report["target"], report["kind"]), {})
        for name, entry in report["conventions"].items():
            if entry.get("source") != "undeclared" or name not in found:
                found[name] = entry
    for (target, kind), conventions in seen.items():
        text = ", ".join(f"{name}: {entry['value']} ({entry['source']})" for name, entry in conventions.items())
        terminalreporter.write_line(f"{target} ({kind}): {text or 'none'}")
