"""The assertion the tests of broken implementations share: a broken function fails the clause it breaks, with a
counterexample and a command that reproduces the failure; the case it reports fails again when replayed."""

from __future__ import annotations

import json

from kqv.conformance import check, replay


def assert_caught(fn, kind: str, arrays: str = "numpy", **options) -> None:
    """``fn`` (marked with ``fn.breaks``, its clause, and ``fn.declaration``) fails ``fn.breaks`` under ``check`` with
    ``options`` (profile, seed, dtypes, ...), and the failing case it reports fails again under ``replay``.

    A failure found across examples (an inconsistent convention) has no single case: its command is the seeded run.
    A bug that is random (``impl.determinism``) need not show again on one replay.
    """
    name = fn.__name__
    report = check(fn, kind, clauses=[fn.breaks], arrays=arrays, name=name, **options, **fn.declaration)
    [result] = report.targets[0].clauses
    assert result.status == "failed", f"{name} was not caught on {fn.breaks}: {result.message}"
    assert not report.conformant
    assert result.counterexample and result.reproduce
    failing = next((d for d in result.dtypes if d.status == "failed" and d.case), None)
    if failing is None:
        assert f"--seed {options.get('seed', 0)}" in result.reproduce and "--replay" not in result.reproduce
        return
    assert json.loads(failing.case)["kind"] == kind and "--replay" in result.reproduce
    if fn.breaks == "impl.determinism":
        return
    again = replay(fn, kind, clause=fn.breaks, case=failing.case, arrays=arrays, name=name, **fn.declaration)
    assert again.targets[0].clauses[0].status == "failed", "the reported case does not reproduce the failure"
