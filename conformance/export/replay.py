"""The implementation as the judge sees it: every call a check makes is answered by the output written for it.

The judge runs the checks of ``kqv check`` again, on the cases of the export; each check builds its
calls from the case as it did at export time, and :class:`Replay` finds the case of each call by its
key (:func:`~kqv.conformance.export.arrays.call_key`) and returns the outputs in ``RESULTS`` for it.
A call the export does not hold means the export was written by another kqv (or NumPy): the judge
stops with :class:`StaleExport` rather than judge the wrong cases.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Backend
from ..declaration import Declaration
from .arrays import call_key
from .forms import named
from .manifest import ManifestError
from .outputs import Results


class StaleExport(ManifestError):
    """A check made a call the export does not hold: it was written by another version of kqv or NumPy."""


class Replay:
    """The backend of the judge (:attr:`backend`), named ``name``: outputs read from :class:`Results`."""

    def __init__(self, name: str, declaration: Declaration, manifest: dict[str, Any], results: Results) -> None:
        self.results = results
        self.by_key = {case["key"]: case["id"] for case in manifest["cases"]}
        self.unknown: list[str] = []  # the calls the export does not hold, described
        self.probing = False  # while the diagnosis calls its probes, which no export holds
        self.backend = Backend(name, self.attention, declaration,
                               description=f"outputs read from {results.directory}")

    def attention(self, *args: Any, **keywords: Any) -> Any:
        """The output written for this call (with its lse, for a ``return_lse`` call)."""
        call = named(self.backend.kind, args, keywords)
        case_id = self.by_key.get(call_key(call))
        if case_id is None and self.probing:
            raise LookupError("kqv's diagnosis probes are not in the export")
        if case_id is None:
            self.unknown.append(", ".join(f"{name} {value.dtype} {value.shape}" if isinstance(value, np.ndarray)
                                          else f"{name}={value!r}" for name, value in call.items()))
            raise LookupError("the export holds no case of this call")
        outputs = self.results.outputs(case_id)
        return outputs[0] if len(outputs) == 1 else outputs

    def check_known(self) -> None:
        """Raise :class:`StaleExport` if a check made a call the export does not hold."""
        if self.unknown:
            raise StaleExport(f"DIR: a check made a call the export does not hold ({self.unknown[0]}): it was written "
                              f"by another version of kqv or NumPy; export it again with this one")
