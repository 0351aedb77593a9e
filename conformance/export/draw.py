"""Drawing the cases of an export: every check of the kind, at every dtype, run on the reference as ``kqv check`` runs.

Hypothesis draws the cases of each check exactly as for ``kqv check`` (the same strategies, profile,
seed, and the draws at tile boundaries), on a :class:`~kqv.conformance.export.recorder.Recorder`:
the reference answers and passes every check, so nothing is shrunk, and each call becomes a case.
The clauses about the call in memory (:data:`IN_MEMORY`) and the gradient clauses hold no example:
files cannot show them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..declaration import Declaration
from ..dtypes import bfloat16_missing
from ..executors.capture import Captured
from ..executors.outcome import Outcome, run_case
from ..gradients import ALL_CLAUSES as GRADIENT_CLAUSES  # a file holds forward outputs: no gradient
from ..kinds.base import Case
from ..profiles import profile as lookup_profile
from ..registry import Check, Context
from ..runner import Progress, explore, selected_checks
from .manifest import header
from .recorder import Recorder
from .writer import Writer

IN_MEMORY = {
    "impl.determinism": "judged on two calls in memory (kqv check): an export holds one output per call",
    "impl.inputs-unmodified": "judged on the input arrays in memory after the call (kqv check)",
    "impl.strided-inputs": "judged on strided and expanded arrays in memory (kqv check): files are contiguous",
}
FORWARD_ONLY = ("an export holds forward outputs: the gradients are judged on a differentiable call in memory "
                "(kqv check --backward)")


class ExportError(Exception):
    """The reference failed a check under the declaration: a bug of kqv, since it answers every call."""


@dataclass(frozen=True)
class Summary:
    """What an export wrote: how many cases (calls) and examples, of which clauses, how many bytes, in how long,
    and how many clauses it holds no example of (at one dtype at least; the manifest says why)."""

    directory: Path
    cases: int
    examples: int
    clauses: int
    bytes: int
    seconds: float
    skipped: int = 0


class Recording:
    """The executor of an export: runs each check in this process on the :class:`Recorder` and keeps its example."""

    deaths = 0

    def __init__(self, recorder: Recorder, writer: Writer) -> None:
        self.recorder, self.writer = recorder, writer

    def run(self, check: Check, case: Case) -> Outcome:
        self.recorder.start(check.clause)
        outcome = run_case(check, self.recorder.backend, case, streams=False)
        if outcome.status == "failed":
            raise ExportError(f"the reference fails {check.clause} on {case.to_json()}: {outcome.message} (a bug of kqv)")
        self.writer.add_example(check, case, list(self.recorder.calls))
        return outcome

    def close(self) -> None:
        pass


def export(directory: Path, declaration: Declaration, profile: str = "ci", seed: int = 0,
           clauses: list[str] | None = None, progress: Progress | None = None) -> Summary:
    """Write the cases ``kqv check`` draws for ``declaration`` into ``directory`` (new, or empty) and return the
    :class:`Summary`; ``clauses`` restricts them to those clause ids."""
    from ..api import versions

    started = time.perf_counter()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ValueError(f"DIR: {directory} exists and is not an empty directory; name a new or empty one")
    directory.mkdir(parents=True, exist_ok=True)
    writer = Writer(directory)
    executor = Recording(Recorder(declaration, writer), writer)
    drawn = lookup_profile(profile).budgeted(declaration.shapes, seed)
    checks = selected_checks(declaration.kind, clauses)
    notify = progress or (lambda event, info: None)
    notify("target", {"target": "kqv export", "kind": declaration.kind, "checks": len(checks)})
    for check in checks:
        reason = (IN_MEMORY.get(check.clause) or (FORWARD_ONLY if check.clause in GRADIENT_CLAUSES else None)
                  or check.skip_reason(declaration))
        if reason:
            writer.skip(check.clause, None, reason)
        else:
            for dtype in declaration.dtypes if check.per_dtype else (None,):
                missing = dtype == "bfloat16" and bfloat16_missing()
                if missing:
                    writer.skip(check.clause, dtype, missing)
                    continue
                explore(check, executor, declaration, dtype, drawn, seed, Context(), Captured())
        notify("clause", {"target": "kqv export", "clause": check.clause, "status": "passed"})
    manifest = writer.finish(header(declaration, profile, seed, versions()))
    return Summary(directory, len(manifest["cases"]), len(manifest["examples"]),
                   len({example["clause"] for example in manifest["examples"]}),
                   sum(path.stat().st_size for path in directory.rglob("*") if path.is_file()),
                   time.perf_counter() - started, len({entry["clause"] for entry in manifest["skipped"]}))
