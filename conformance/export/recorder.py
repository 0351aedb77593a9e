"""The reference as the backend an export runs the checks on: it answers every call, and records it as a case.

A check calls the backend it judges one or more times (a metamorphic check: the call and its
transformed twins). Run on a :class:`Recorder`, each call is answered by the float64 reference,
under the declaration's conventions, rounded to the query's dtype (so every check passes, and
hypothesis draws exactly the cases ``kqv check`` draws for a conformant backend), and handed to the
:class:`~kqv.conformance.export.writer.Writer` with its expected output and the bound of each element.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Backend
from ..declaration import Declaration
from ..dtypes import name_of
from ..kinds.sdpa.bound import call_expectation, call_lse_expectation, prepared_call
from ..kinds.sdpa.call import lse_dtypes
from ..tolerance import Precision
from .arrays import call_key
from .writer import Expected, Writer

CALL_OPTIONS = ("attn_mask", "is_causal", "scale", "dropout_p", "return_lse")  # the rest are the variants' keywords


def lse_dtype(dtype: str) -> str:
    """The dtype an export's expected lse is bounded for: float64 for float64 inputs, else float32 (FlashAttention's)."""
    return "float64" if dtype == "float64" else "float32"


class Recorder:
    """The backend of an export (:attr:`backend`): the reference answers, the :class:`Writer` keeps each new call.

    :meth:`start` begins an example of a clause; :attr:`calls` lists the case ids of its calls, in order.
    """

    def __init__(self, declaration: Declaration, writer: Writer) -> None:
        self.declaration = declaration
        self.writer = writer
        self.clause = ""
        self.calls: list[str] = []
        self.backend = Backend("kqv export", self.attention, declaration,
                               description="kqv.reference (float64 NumPy) under the declaration, recording each call")

    def start(self, clause: str) -> None:
        self.clause, self.calls = clause, []

    def attention(self, query: np.ndarray, key: np.ndarray, value: np.ndarray, **keywords: Any) -> Any:
        """The ``sdpa`` call: the reference's output in the query's dtype (and its lse with ``return_lse``)."""
        dtype = name_of(query.dtype)
        precision = Precision.of(dtype, self.declaration.accumulation)
        variants = {name: value for name, value in keywords.items() if name not in CALL_OPTIONS}
        call = prepared_call(query, key, value, keywords.get("attn_mask"), keywords.get("is_causal", False),
                             keywords.get("scale"), variants, self.declaration.alignment,
                             self.declaration.masked_rows or "zeros")
        judged = call_expectation(call, precision)
        empty = int(judged.empty.sum())
        outputs = {"output": Expected(dtype, judged.expected, judged.bound, (dtype,),
                                      bool(np.isfinite(judged.expected).all())
                                      and (empty == 0 or self.declaration.masked_rows is not None))}
        if keywords.get("return_lse"):
            returned = lse_dtype(dtype)
            lse, bound = call_lse_expectation(call, precision, returned)
            outputs["lse"] = Expected(returned, lse, bound, lse_dtypes(dtype), bool(np.isfinite(lse).all()))
        named = {"query": query, "key": key, "value": value, **keywords}
        self.calls.append(self.writer.add_case(call_key(named), self.clause, named, outputs, empty))
        output = judged.expected.astype(query.dtype)
        if "lse" in outputs:
            return output, outputs["lse"].expected.astype(outputs["lse"].dtype)
        return output
