"""``kqv judge DIR RESULTS``: the report of ``kqv check`` for the outputs an implementation wrote for an export.

The runner of ``kqv check`` runs every check the export holds, with its cases coming from the
export (:class:`Exported`) instead of hypothesis, against the outputs in ``RESULTS``
(:class:`~kqv.conformance.export.replay.Replay`): each clause is judged by the code that judges it
in ``kqv check``, the metamorphic relations included, and the report (terminal, JSON, Markdown,
exit status) is the same. An example whose cases have missing or malformed outputs fails, naming
them; the report lists every such case. Nothing is shrunk: of the failing examples of a clause, the
report gives the smallest.
"""

from __future__ import annotations

import contextlib
import math
import shlex
from pathlib import Path
from typing import Any, Iterator

from ..executors import InProcess
from ..executors.capture import Captured
from ..kinds import KINDS
from ..registry import Check, Context
from ..report.data import Report
from ..runner import Explored, Progress, absorbed, run_backend
from .draw import IN_MEMORY
from .manifest import ManifestError, declaration_of, read
from .outputs import Results
from .replay import Replay


class Exported:
    """The cases of an export as the runner's :class:`~kqv.conformance.runner.CaseSource`."""

    def __init__(self, manifest: dict[str, Any], results: Results, replay: Replay, command: str) -> None:
        self.kind = KINDS[manifest["kind"]]
        self.results, self.replay, self.command = results, replay, command
        self.executor = InProcess(replay.backend)
        self.sizes = {case["id"]: sum(math.prod(i["shape"]) for i in case["inputs"].values())
                      for case in manifest["cases"]}
        self.examples: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
        for example in manifest["examples"]:
            self.examples.setdefault((example["clause"], example["check"], example["dtype"]), []).append(example)

    def explore(self, check: Check, dtype: str | None, context: Context, captured: Captured) -> Explored:
        """Run ``check`` on every example of it at ``dtype``; a failure gives the smallest failing example."""
        if check.clause in IN_MEMORY:
            return Explored("skipped", IN_MEMORY[check.clause], 0, None)
        examples = self.examples.get((check.clause, check.name, dtype), [])
        if not examples:
            return Explored("skipped", "the export holds no example of it (kqv export --clause left it out)", 0, None)
        failures = []
        for example in examples:
            case = self.kind.case.from_dict({k: v for k, v in example["case"].items() if k != "kind"})
            problems = [f"{case_id}: {self.results.problems[case_id]}" for case_id in example["cases"]
                        if case_id in self.results.problems]
            if problems:
                failures.append((example, case, lambda problems=problems: "; ".join(problems)))
                continue
            outcome = absorbed(self.executor.run(check, case), context, captured)
            self.replay.check_known()
            if outcome.status == "failed":
                failures.append((example, case, lambda outcome=outcome: outcome.message))
        if not failures:
            return Explored("passed", "", len(examples), None)
        example, case, message = min(failures, key=lambda f: sum(self.sizes[c] for c in f[0]["cases"]))
        return Explored("failed", f"{message()} (cases {', '.join(example['cases'])}; {len(failures)} of "
                        f"{len(examples)} examples fail)", len(examples), case)

    @contextlib.contextmanager
    def diagnosing(self) -> Iterator[None]:
        """While kqv's diagnosis names the departures of a failure: the failing cases' outputs come from the files;
        its probes, which no export holds, are calls that raised (they count neither way)."""
        self.replay.probing = True
        try:
            yield
        finally:
            self.replay.probing = False

    def reproduce(self, clause: str) -> str:
        return f"{self.command} --clause {clause}"


def judge(directory: Path, results: Path, clauses: list[str] | None = None, name: str | None = None,
          progress: Progress | None = None) -> Report:
    """The report of the outputs in ``results`` for the export in ``directory``; ``clauses`` restricts it to those
    clause ids. A ``ManifestError`` (a usage error, ``kqv.conformance.export.manifest``) when either folder is not
    what it should be."""
    from ..api import versions

    manifest = read(directory)
    if not results.is_dir():
        raise ManifestError(f"RESULTS: {results} is not a directory (the folder the implementation wrote its outputs "
                            f"to, one <case id>.npy per case)")
    declaration = declaration_of(manifest)
    found = Results(results, manifest)
    replay = Replay(name or results.resolve().name, declaration, manifest, found)
    source = Exported(manifest, found, replay, f"kqv judge {shlex.quote(str(directory))} {shlex.quote(str(results))}")
    exported = list(dict.fromkeys(entry["clause"] for entry in manifest["examples"] + manifest["skipped"]))
    target = run_backend(replay.backend, manifest["profile"], manifest["seed"], clauses or exported, progress,
                         executor=source.executor, source=source)
    target.ran_in = f"outputs read from {results}"
    target.problems = found.listed()
    return Report([target], manifest["profile"], manifest["seed"], versions=versions())
