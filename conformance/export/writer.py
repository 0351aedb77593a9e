"""Writing an export: each case (one call) as ``.npy`` files and its entry, then the manifest and the index.

A case is one call an implementation makes: its inputs (arrays as files, other options as JSON
values), the file each of its outputs goes to (``<id>.npy``, the lse of a ``return_lse`` call
``<id>.lse.npy``), and for each output the float64 expected output and the bound of each element.
An example is one run of one check on one drawn case of the suite: its clause, dtype, the case
(``kqv check --replay`` reads the same JSON), and the ids of the cases it calls, in order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..dtypes import name_of
from ..kinds.base import Case
from ..registry import Check
from .arrays import ArrayStore, plain
from .forms import Answer
from .index import write_index
from .manifest import MANIFEST, result_file


def relation(check: Check) -> str:
    """What the outputs of one example must satisfy, in words: the check's docstring on one line."""
    return " ".join((check.run.__doc__ or "").split())


class Writer:
    """The files of one export under ``directory``, written as the cases come."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.store = ArrayStore(directory)
        self.cases: dict[str, dict[str, Any]] = {}  # by call key (arrays.call_key)
        self.examples: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []

    def add_case(self, key: str, clause: str, named: dict[str, Any], answer: Answer) -> str:
        """The id of the case of one call (``named``: its arguments by name; ``answer``: the reference's), written if it
        is new."""
        if key in self.cases:
            entry = self.cases[key]
            if clause not in entry["clauses"]:
                entry["clauses"].append(clause)
            return entry["id"]
        case_id = f"case-{len(self.cases) + 1:06d}"
        inputs = {name: {"file": self.store.add(value), "dtype": name_of(value.dtype), "shape": list(value.shape)}
                  for name, value in named.items() if isinstance(value, np.ndarray)}
        options = {name: plain(value) for name, value in named.items() if not isinstance(value, np.ndarray)}
        self.cases[key] = {
            "id": case_id, "key": key, "dtype": answer.dtype, "inputs": inputs, "options": options,
            "outputs": {name: {"file": result_file(case_id, name), "dtype": out.dtype, "accepted": list(out.accepted),
                               "shape": list(out.expected.shape), "expected": self.store.add(out.expected),
                               "bound": self.store.add(out.bound), "finite": out.finite}
                        for name, out in answer.outputs.items()},
            "rows_without_keys": answer.rows_without_keys, "clauses": [clause]}
        return case_id

    def add_example(self, check: Check, case: Case, calls: list[str]) -> None:
        """One example of ``check``, once: the drawn case and the ids of the cases it calls."""
        entry = {"clause": check.clause, "check": check.name, "dtype": getattr(case, "dtype", None),
                 "case": json.loads(case.to_json()), "cases": calls, "relation": relation(check)}
        if entry not in self.examples:
            self.examples.append(entry)

    def skip(self, clause: str, dtype: str | None, reason: str) -> None:
        """A clause (at a dtype) the export holds no example of, and why."""
        self.skipped.append({"clause": clause, "dtype": dtype, "reason": reason})

    def finish(self, header: dict[str, Any]) -> dict[str, Any]:
        """Write ``manifest.json`` (``header`` and the cases, examples and skipped clauses) and ``cases.tsv``."""
        manifest = {**header, "cases": list(self.cases.values()), "examples": self.examples, "skipped": self.skipped}
        (self.directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if manifest["index"]:
            write_index(self.directory, manifest)
        return manifest
