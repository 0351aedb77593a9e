"""The outputs an implementation wrote for an export: each case's files, inspected before any check reads them.

A case's output is ``RESULTS/<id>.npy`` (and ``<id>.lse.npy`` for a ``return_lse`` call), in the
case's dtype (bfloat16 as its uint16 bit pattern). A file that is missing, unreadable (or pickled),
of another dtype or shape is a *problem* of its case: every example that calls the case fails, naming
it. NaN or inf where every element must be a number is a *note* of its case: the clauses judge it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..report.data import CaseProblem
from .arrays import restored, storage_dtype


def _needs(accepted: list[str]) -> str:
    return " or ".join(f"{name} ({storage_dtype(name).str}{', its uint16 bit pattern' if name == 'bfloat16' else ''})"
                       for name in accepted)


def inspect(path: Path, spec: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(problem, note)`` of one output file against its entry in the manifest (each None when there is none)."""
    if not path.is_file():
        return f"{path.name} is missing", None
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - np.load raises many kinds on a broken file
        return f"{path.name} is not a readable .npy file ({type(error).__name__}: {error})", None
    if not isinstance(array, np.ndarray):
        return f"{path.name} holds no single array (an .npz archive?)", None
    if not any(array.dtype == storage_dtype(name) for name in spec["accepted"]):
        return f"{path.name} has dtype {array.dtype.str} where the case needs {_needs(spec['accepted'])}", None
    if list(array.shape) != spec["shape"]:
        return f"{path.name} has shape {tuple(array.shape)} where the case needs {tuple(spec['shape'])}", None
    if spec["finite"]:
        values = restored(array, _named(array.dtype, spec["accepted"])).astype(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            return None, (f"{path.name}: {int(bad.sum())} of {values.size} elements are NaN or inf (the first at "
                          f"{index}) where the reference has numbers")
    return None, None


def _named(dtype: np.dtype, accepted: list[str]) -> str:
    """The kqv dtype, among ``accepted``, of a file of ``dtype``."""
    return next(name for name in accepted if storage_dtype(name) == dtype)


class Results:
    """The results folder of one implementation, for the cases of one manifest: :attr:`problems` and :attr:`notes`
    by case id, and :meth:`outputs`, the arrays of a case as its call returns them."""

    def __init__(self, directory: Path, manifest: dict[str, Any]) -> None:
        self.directory = directory
        self.cases = {case["id"]: case for case in manifest["cases"]}
        self.problems: dict[str, str] = {}
        self.notes: dict[str, str] = {}
        for case_id, case in self.cases.items():
            for spec in case["outputs"].values():
                problem, note = inspect(directory / spec["file"], spec)
                if problem:
                    self.problems[case_id] = "; ".join(filter(None, (self.problems.get(case_id), problem)))
                if note:
                    self.notes[case_id] = "; ".join(filter(None, (self.notes.get(case_id), note)))

    def outputs(self, case_id: str) -> tuple[np.ndarray, ...]:
        """The output (and the lse of a ``return_lse`` call) of a case without problems, in their dtypes."""
        arrays = []
        for spec in self.cases[case_id]["outputs"].values():
            path = self.directory / spec["file"]
            array = np.load(path, allow_pickle=False)
            arrays.append(restored(array, _named(array.dtype, spec["accepted"])))
        return tuple(arrays)

    def listed(self) -> list[CaseProblem]:
        """Every case with a problem or a note, in the order of the manifest, for the report."""
        return [CaseProblem(case_id, "; ".join(filter(None, (self.problems.get(case_id), self.notes.get(case_id)))),
                            list(case["clauses"]))
                for case_id, case in self.cases.items() if case_id in self.problems or case_id in self.notes]
