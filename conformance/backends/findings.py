"""Known departures shared by several backends, as :class:`~kqv.conformance.declaration.ExpectedFailure` lists.

A backend whose arithmetic at some dtype is less precise than the dtype (a float64 kernel that
computes part of the formula in float32) departs from every clause the suite judges against the
float64 reference at that dtype. :func:`imprecise` lists them all with the one reason, so the
report shows each as an expected failure (or an expected failure that did not show), never as a pass.
"""

from __future__ import annotations

from ..declaration import ExpectedFailure

def imprecise(kind: str, dtypes: tuple[str, ...], reason: str, *, explicit_scales_only: bool = False
              ) -> tuple[ExpectedFailure, ...]:
    """Expected failures at ``dtypes`` of every clause of ``kind`` whose check judges numbers against the
    reference (the checks' ``numeric`` attribute), or with ``explicit_scales_only`` of those whose checks
    draw explicit scales."""
    from ..checks import checks_for

    chosen = [check for check in checks_for(kind) if check.numeric]
    if explicit_scales_only:
        chosen = [check for check in chosen if getattr(check.strategy, "draws_explicit_scales", lambda: False)()]
    return tuple(ExpectedFailure(clause, reason, dtypes) for clause in dict.fromkeys(c.clause for c in chosen))
