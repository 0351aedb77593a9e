"""Calling a ``pe`` backend, ``fn(length, d_model)``, and reading its encoding."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import BackendError, Invocation, invoke
from ...registry import CheckFailure
from ...dtypes import DTYPES, as_float64, name_of
from ...messages import undeclared_dtype, unknown_dtype, wrong_shape
from ...tolerance import Precision
from ...unsupported import Feature, hint
from .case import PeCase

LAYOUT = "(length, d_model)"


def call(backend: Any, case: PeCase, layout: str = "contiguous") -> Invocation:
    """``fn(length, d_model)``: the call takes no array, so ``layout`` has nothing to apply to."""
    try:
        return invoke(backend, (case.length, case.d_model), {}, ("length", "d_model"))
    except BackendError as error:
        raise CheckFailure(str(error) + hint(error, features(case)), cause=str(error)) from None


def features(case: PeCase) -> list[Feature]:
    """What the call asks of the backend with the declaration that marks it unsupported: an odd d_model."""
    return [Feature(f"an odd d_model ({case.d_model})", "odd_d_model")] if case.d_model % 2 else []


def encode(backend, case):
    """The backend's PE as float64 and the precision of the dtype it returned."""
    result = call(backend, case).output
    if result.shape != (case.length, case.d_model):
        raise CheckFailure(wrong_shape(result.shape, (case.length, case.d_model), LAYOUT))
    dtype = name_of(result.dtype)
    if dtype not in DTYPES:
        raise CheckFailure(unknown_dtype(dtype, DTYPES))
    if dtype not in backend.declaration.dtypes:
        raise CheckFailure(undeclared_dtype(dtype, backend.declaration.dtypes))
    return as_float64(result), Precision.of(dtype, backend.declaration.accumulation)


def output(backend: Any, case: PeCase, layout: str = "contiguous") -> np.ndarray:
    """The encoding as float64, after checking its shape and dtype."""
    return encode(backend, case)[0]
