"""Known departures shared by several backends, as :class:`~kqv.conformance.declaration.ExpectedFailure` lists.

A backend whose arithmetic at some dtype is less precise than the dtype (a float64 kernel that
computes part of the formula in float32) departs from every clause the suite judges against the
float64 reference at that dtype. :func:`imprecise` lists them all with the one reason, so the
report shows each as an expected failure (or an expected failure that did not show), never as a pass.
"""

from __future__ import annotations

from ..declaration import ExpectedFailure

# Clauses whose sdpa checks do not compare numbers with the reference: not affected by imprecision.
STRUCTURAL = {"attention.shape", "attention.dtype", "impl.determinism", "impl.inputs-unmodified", "attention.finite"}


def imprecise(kind: str, dtypes: tuple[str, ...], reason: str, clauses: tuple[str, ...] | None = None
              ) -> tuple[ExpectedFailure, ...]:
    """Expected failures at ``dtypes`` of every numerically judged clause of ``kind`` (or of ``clauses``)."""
    from ..checks import checks_for

    numeric = dict.fromkeys(c.clause for c in checks_for(kind) if c.clause not in STRUCTURAL)
    return tuple(ExpectedFailure(clause, reason, dtypes) for clause in (clauses or numeric))
