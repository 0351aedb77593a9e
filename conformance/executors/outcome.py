"""The outcome of one check on one case, and running it: the part an executor runs wherever it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import Backend
from ..diagnosis.evidence import Evidence, observe
from ..registry import Check, CheckFailure, Context
from .capture import Captured, captured_python


@dataclass
class Outcome:
    """``status`` is ``passed`` or ``failed`` (with ``message``); ``observations`` are what the check recorded in its
    :class:`~kqv.conformance.registry.Context`; ``captured`` what the backend printed and warned; ``cause`` what made
    the call itself fail, whatever the clause (the backend raised, killed its worker or hung)."""

    status: str
    message: str = ""
    observations: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    captured: Captured = field(default_factory=Captured)
    fatal: str | None = None  # "crashed" (the worker process died on this case) or "hung" (it was stopped)
    cause: str | None = None

    def failure(self) -> CheckFailure:
        return CheckFailure(self.message, self.cause)


def run_case(check: Check, backend: Backend, case: Any, streams: bool = True) -> Outcome:
    """Run ``check`` on ``case`` with a fresh context, capturing warnings (and, with ``streams``, Python's prints)."""
    context, captured = Context(), Captured()
    try:
        with captured_python(captured, streams), np.errstate(all="ignore"):
            check.run(backend, case, context)
    except CheckFailure as failure:
        return Outcome("failed", str(failure), context.observations, captured, cause=failure.cause)
    return Outcome("passed", "", context.observations, captured)


def diagnose_case(backend: Backend, case: Any, streams: bool = True) -> Evidence:
    """The :class:`~kqv.conformance.diagnosis.Evidence` of one call of ``backend`` on ``case``; what it prints or warns
    is dropped (the clause's own cases counted it already)."""
    with captured_python(Captured(), streams), np.errstate(all="ignore"):
        return observe(backend, case)
