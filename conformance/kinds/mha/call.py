"""Calling an ``mha`` backend on a case and judging its output: the pieces every mha check shares."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import BackendError, Invocation, invoke
from ...registry import CheckFailure, agree
from ...dtypes import as_float64
from ...messages import wrong_shape
from ...tolerance import Expectation, Precision
from .bound import mha_expectation
from .case import MhaCase, MhaInputs

NAMES = ("x_q", "x_kv", "w_q", "w_k", "w_v", "w_o")
ALL_BIASES = ("q", "k", "v", "o")
LAYOUT = "(B, L, d_model)"


def arrays(inputs: MhaInputs) -> dict[str, np.ndarray]:
    """Every array of the call by argument name (biases and mask when given)."""
    named = {name: getattr(inputs, name) for name in NAMES}
    named.update((f"b_{name}", getattr(inputs, f"b_{name}")) for name in ALL_BIASES
                 if getattr(inputs, f"b_{name}") is not None)
    if inputs.attn_mask is not None:
        named["attn_mask"] = inputs.attn_mask
    return named


def call(backend: Any, inputs: MhaInputs, layout: str = "contiguous") -> Invocation:
    """``fn(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, ..., *, num_heads, ...)`` with only the keywords the call needs."""
    kwargs: dict[str, Any] = {f"b_{name}": getattr(inputs, f"b_{name}") for name in ALL_BIASES
                              if getattr(inputs, f"b_{name}") is not None}
    kwargs["num_heads"] = inputs.num_heads
    if inputs.attn_mask is not None:
        kwargs["attn_mask"] = inputs.attn_mask
    if inputs.is_causal:
        kwargs["is_causal"] = True
    try:
        return invoke(backend, tuple(getattr(inputs, name) for name in NAMES), kwargs, NAMES, layout)
    except BackendError as error:
        raise CheckFailure(str(error), cause=str(error)) from None


def output(backend: Any, inputs: MhaInputs, layout: str = "contiguous") -> np.ndarray:
    """The backend's output as float64, after checking its shape."""
    result = call(backend, inputs, layout).output
    if result.shape != inputs.x_q.shape:
        raise CheckFailure(wrong_shape(result.shape, inputs.x_q.shape, LAYOUT))
    return as_float64(result)


def expectation(backend: Any, inputs: MhaInputs, case: MhaCase, masked_rows: str | None = None) -> Expectation:
    """The reference output and bound under the backend's declared precision and conventions."""
    declaration = backend.declaration
    return mha_expectation(inputs, Precision.of(case.dtype, declaration.accumulation),
                           masked_rows or declaration.masked_rows or "zeros", declaration.alignment)


def judge(backend: Any, case: MhaCase) -> None:
    """The output agrees with the reference within the bound (clause ``attention.accuracy``)."""
    inputs = case.build()
    judged = expectation(backend, inputs, case)
    agree(output(backend, inputs), judged.expected, judged.bound)
