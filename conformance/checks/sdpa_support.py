"""Calling an ``sdpa`` backend on a case and judging its output: the pieces every sdpa check shares."""

from __future__ import annotations

import numpy as np

from ..backend import Backend, BackendError, Invocation, invoke
from ..cases import SdpaCase, SdpaInputs
from ..compare import mismatch
from ..dtypes import as_float64, round_to
from ..tolerance import Expectation, Precision, sdpa_expectation
from .registry import CheckFailure

NAMES = ("query", "key", "value")


def call(backend: Backend, inputs: SdpaInputs, layout: str = "contiguous") -> Invocation:
    """``fn(query, key, value, ...)`` with only the keywords the call needs (contract ``sdpa``)."""
    kwargs = {}
    if inputs.attn_mask is not None:
        kwargs["attn_mask"] = inputs.attn_mask
    if inputs.is_causal:
        kwargs["is_causal"] = True
    if inputs.scale is not None:
        kwargs["scale"] = inputs.scale
    try:
        return invoke(backend, (inputs.query, inputs.key, inputs.value), kwargs, NAMES, layout)
    except BackendError as error:
        raise CheckFailure(str(error)) from None


def expected_shape(inputs: SdpaInputs) -> tuple[int, ...]:
    """``(..., L, Ev)`` (clause ``attention.shape``)."""
    batch = np.broadcast_shapes(inputs.query.shape[:-2], inputs.key.shape[:-2], inputs.value.shape[:-2])
    return tuple(batch) + (inputs.query.shape[-2], inputs.value.shape[-1])


def output(backend: Backend, inputs: SdpaInputs, layout: str = "contiguous") -> np.ndarray:
    """The backend's output as float64, after checking its shape."""
    result = call(backend, inputs, layout).output
    shape = expected_shape(inputs)
    if result.shape != shape:
        raise CheckFailure(f"output shape {result.shape}, expected {shape} = (..., L, Ev)")
    return as_float64(result)


def expectation(backend: Backend, inputs: SdpaInputs, case: SdpaCase, masked_rows: str | None = None) -> Expectation:
    """The reference output and bound under the backend's declared precision and conventions."""
    declaration = backend.declaration
    precision = Precision.of(case.dtype, declaration.accumulation)
    return sdpa_expectation(inputs, precision, declaration.alignment,
                            masked_rows or declaration.masked_rows or "zeros")


def agree(actual: np.ndarray, expected: np.ndarray, bound: np.ndarray, what: str = "the output") -> None:
    found = mismatch(actual, expected, bound, what)
    if found is not None:
        raise CheckFailure(str(found))


def judge(backend: Backend, case: SdpaCase, inputs: SdpaInputs | None = None) -> None:
    """The output agrees with the reference within the bound of clause ``attention.accuracy``."""
    inputs = inputs or case.build()
    judged = expectation(backend, inputs, case)
    agree(output(backend, inputs), judged.expected, judged.bound)


def fresh(case: SdpaCase, shape: tuple[int, ...], salt: int, magnitude: float = 1.0) -> np.ndarray:
    """New standard normal entries (times ``magnitude``) in the case's dtype, from its seed and ``salt``."""
    rng = np.random.default_rng([case.seed, salt])
    return round_to(rng.standard_normal(shape) * magnitude, case.dtype)
