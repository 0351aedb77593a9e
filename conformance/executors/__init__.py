"""Where the backend under test runs: in a worker process (the default) or in this process.

An executor runs one check on one case and gives its :class:`~.outcome.Outcome`; the runner keeps
hypothesis, the shrinking and the report on its side. With isolation (POSIX systems), a backend that
aborts, segfaults or hangs fails the case that caused it, and the run goes on in a new worker.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from ..backend import Backend
from ..diagnosis.evidence import Evidence
from ..options import DEFAULT_TIMEOUT
from ..registry import Check
from .inprocess import InProcess
from .isolated import IsolationError, Isolated
from .outcome import Outcome



class Executor(Protocol):
    deaths: int  # workers lost to a crash or a hang so far

    def run(self, check: Check, case: Any) -> Outcome: ...

    def diagnose(self, case: Any) -> Evidence | None: ...

    def close(self) -> None: ...


def isolation_available() -> str | None:
    """Why worker processes cannot be used here, or None."""
    return None if os.name == "posix" else f"isolation needs a POSIX system (this one is {os.name!r})"


def executor_for(backend: Backend, isolation: bool | None = None, timeout: float = DEFAULT_TIMEOUT) -> Executor:
    """The executor of ``backend``: a worker process with ``isolation`` True (an :class:`IsolationError` where that
    cannot be), this process with False; with None, a worker process wherever the system and the backend allow it,
    else this process, with a note saying why (``InProcess.note``)."""
    if isolation is False:
        return InProcess(backend)
    try:
        missing = isolation_available()
        if missing:
            raise IsolationError(f"{missing}; check with isolation=False (--no-isolation)")
        return Isolated(backend, timeout)
    except IsolationError as error:
        if isolation:
            raise
        return InProcess(backend, note=str(error))


def where(executor: Executor) -> str:
    """Where the backend ran, for the report."""
    if isinstance(executor, InProcess):
        return "this process" + (f" ({executor.note})" if executor.note else " (--no-isolation)")
    return "a worker process"


__all__ = ["DEFAULT_TIMEOUT", "Executor", "InProcess", "Isolated", "IsolationError", "Outcome", "executor_for",
           "isolation_available", "where"]
