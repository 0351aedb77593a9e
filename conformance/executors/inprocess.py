"""Running the backend under test in this process: for pdb, and for backends that cannot travel to a worker."""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from ..registry import Check
from ..diagnosis.evidence import Evidence
from .outcome import Outcome, diagnose_case, run_case


class InProcess:
    """An executor that calls the backend here; a crash of the backend ends the run, a hang hangs it."""

    deaths = 0  # a crash here ends the run

    def __init__(self, backend: Backend, note: str = "") -> None:
        self.backend = backend
        self.note = note  # why the backend runs here, when isolation was not turned off

    def run(self, check: Check, case: Any) -> Outcome:
        return run_case(check, self.backend, case, streams=False)

    def diagnose(self, case: Any) -> Evidence:
        return diagnose_case(self.backend, case, streams=False)

    def close(self) -> None:
        pass
