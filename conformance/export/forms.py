"""The calls of each kind as an export sees them, and what the reference answers to each.

A backend of kind ``sdpa`` is called ``fn(query, key, value, **keywords)``, one of kind ``mha``
``fn(x_q, x_kv, w_q, w_k, w_v, w_o, **keywords)`` and one of kind ``pe`` ``fn(length, d_model)``
(DESIGN.md, "Contracts"). :func:`named` gives a call's arguments by name; :func:`answer` the float64
reference's output under a declaration, the bound of each element, and what the call returns to the
check that made it (the reference rounded to the output's dtype).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kqv.reference import sinusoidal_positional_encoding

from ..declaration import Declaration
from ..dtypes import name_of
from ..kinds.mha.bound import mha_expectation
from ..kinds.mha.case import MhaInputs
from ..kinds.pe.bound import pe_bound
from ..kinds.sdpa.bound import call_expectation, call_lse_expectation, prepared_call
from ..kinds.sdpa.call import lse_dtypes
from ..tolerance import Expectation, Precision

POSITIONAL = {"sdpa": ("query", "key", "value"), "mha": ("x_q", "x_kv", "w_q", "w_k", "w_v", "w_o"),
              "pe": ("length", "d_model")}
SDPA_OPTIONS = ("attn_mask", "is_causal", "scale", "dropout_p", "return_lse")  # the rest are the variants' keywords


@dataclass(frozen=True)
class Expected:
    """One output of a case: the dtype its bound is for, the float64 reference, the bound of each element, the
    dtypes it may come back in, and whether every element must be a finite number."""

    dtype: str
    expected: np.ndarray
    bound: np.ndarray
    accepted: tuple[str, ...]
    finite: bool


@dataclass(frozen=True)
class Answer:
    """The reference's answer to one call: the case's dtype, each output as :class:`Expected` (``output``, and
    ``lse`` for a ``return_lse`` call), the query rows that keep no key, and what the call returns."""

    dtype: str
    outputs: dict[str, Expected]
    rows_without_keys: int
    returned: Any


def named(kind: str, args: tuple[Any, ...], keywords: dict[str, Any]) -> dict[str, Any]:
    """The arguments of one call of ``kind`` by name."""
    return {**dict(zip(POSITIONAL[kind], args)), **keywords}


def _output(dtype: str, judged: Expectation, declaration: Declaration) -> tuple[Expected, int]:
    """The output of an ``sdpa`` or ``mha`` call and its rows without a key: every element must be a number unless
    the reference has NaN, or some row keeps no key under an undeclared convention."""
    empty = int(judged.empty.sum())
    finite = bool(np.isfinite(judged.expected).all()) and (empty == 0 or declaration.masked_rows is not None)
    return Expected(dtype, judged.expected, judged.bound, (dtype,), finite), empty


def _sdpa(call: dict[str, Any], declaration: Declaration) -> Answer:
    query = call["query"]
    dtype = name_of(query.dtype)
    precision = Precision.of(dtype, declaration.accumulation)
    variants = {name: value for name, value in call.items() if name not in (*POSITIONAL["sdpa"], *SDPA_OPTIONS)}
    prepared = prepared_call(query, call["key"], call["value"], call.get("attn_mask"), call.get("is_causal", False),
                             call.get("scale"), variants, declaration.alignment, declaration.masked_rows or "zeros")
    output, empty = _output(dtype, call_expectation(prepared, precision), declaration)
    returned = output.expected.astype(query.dtype)
    outputs = {"output": output}
    if call.get("return_lse"):
        lse_dtype = "float64" if dtype == "float64" else "float32"  # FlashAttention's float32, or float64's own
        lse, bound = call_lse_expectation(prepared, precision, lse_dtype)
        outputs["lse"] = Expected(lse_dtype, lse, bound, lse_dtypes(dtype), bool(np.isfinite(lse).all()))
        returned = (returned, lse.astype(lse_dtype))
    return Answer(dtype, outputs, empty, returned)


def _mha(call: dict[str, Any], declaration: Declaration) -> Answer:
    dtype = name_of(call["x_q"].dtype)
    judged = mha_expectation(MhaInputs(**call), Precision.of(dtype, declaration.accumulation),
                             declaration.masked_rows or "zeros", declaration.alignment)
    output, empty = _output(dtype, judged, declaration)
    return Answer(dtype, {"output": output}, empty, output.expected.astype(call["x_q"].dtype))


def _pe(call: dict[str, Any], declaration: Declaration) -> Answer:
    dtype = declaration.dtypes[0]  # the call takes no array: the encoding comes in the first declared dtype
    length, d_model = call["length"], call["d_model"]
    expected = np.asarray(sinusoidal_positional_encoding(length, d_model), dtype=np.float64)
    bound = pe_bound(length, d_model, Precision.of(dtype, declaration.accumulation))
    output = Expected(dtype, expected, bound, declaration.dtypes, True)
    return Answer(dtype, {"output": output}, 0, expected.astype(dtype))


ANSWERS: dict[str, Callable[[dict[str, Any], Declaration], Answer]] = {"sdpa": _sdpa, "mha": _mha, "pe": _pe}


def answer(kind: str, call: dict[str, Any], declaration: Declaration) -> Answer:
    """The reference's :class:`Answer` to one call of ``kind`` (its arguments by name) under ``declaration``."""
    return ANSWERS[kind](call, declaration)
