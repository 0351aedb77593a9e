"""The assertion the tests of broken implementations share: a broken function fails the clause it breaks, and the
case the failure reports fails again when replayed."""

from __future__ import annotations

import json

from kqv.conformance import check, replay


def assert_caught(fn, kind: str, arrays: str = "numpy", **options) -> None:
    """``fn`` (marked with ``fn.breaks``, its clause, and ``fn.declaration``) fails ``fn.breaks`` under ``check`` with
    ``options`` (profile, dtypes, ...), and the failing case it reports fails again under ``replay``."""
    name = fn.__name__
    report = check(fn, kind, clauses=[fn.breaks], arrays=arrays, name=name, **options, **fn.declaration)
    [result] = report.targets[0].clauses
    assert result.status == "failed", f"{name} was not caught on {fn.breaks}: {result.message}"
    failing = next(d for d in result.dtypes if d.status == "failed" and d.case)
    again = replay(fn, kind, clause=fn.breaks, case=failing.case, arrays=arrays, name=name, **fn.declaration)
    assert again.targets[0].clauses[0].status == "failed", "the reported case does not reproduce the failure"
    assert json.loads(failing.case)["kind"] == kind and "--replay" in result.reproduce
