"""The outcome of one check on one case, and running it: the part an executor runs wherever it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..backend import Backend
from ..registry import Check, CheckFailure, Context
from .capture import Captured, captured_python


@dataclass
class Outcome:
    """``status`` is ``passed`` or ``failed`` (with ``message``); ``observations`` are what the check recorded in its
    :class:`~kqv.conformance.registry.Context`; ``captured`` what the backend printed and warned; ``explain`` what
    the failing output computes instead (costly: asked for the shrunk counterexample only)."""

    status: str
    message: str = ""
    observations: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    captured: Captured = field(default_factory=Captured)
    fatal: str | None = None  # "crashed" (the worker process died on this case) or "hung" (it was stopped)
    explain: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    def failure(self) -> CheckFailure:
        return CheckFailure(self.message, self.explain)


def run_case(check: Check, backend: Backend, case: Any, streams: bool = True) -> Outcome:
    """Run ``check`` on ``case`` with a fresh context, capturing warnings (and, with ``streams``, Python's prints)."""
    context, captured = Context(), Captured()
    try:
        with captured_python(captured, streams), np.errstate(all="ignore"):
            check.run(backend, case, context)
    except CheckFailure as failure:
        return Outcome("failed", str(failure), context.observations, captured, explain=failure.explain)
    return Outcome("passed", "", context.observations, captured)
