"""Calling an ``sdpa`` backend on a case and judging its output: the pieces every sdpa check shares."""

from __future__ import annotations

import numpy as np

from ...backend import Backend, BackendError, Invocation, invoke
from ...registry import CheckFailure, agree
from ...dtypes import as_float64, name_of, round_to
from ...messages import lse_wrong_dtype, lse_wrong_shape, wrong_shape
from ...tolerance import Expectation, Precision
from ...unsupported import Feature, causal_feature, hint, layout_features, mask_features
from ...variants import variant
from .bound import sdpa_expectation
from .case import SdpaCase, SdpaInputs

NAMES = ("query", "key", "value")
LAYOUT = "(..., L, Ev)"


def arrays(inputs: SdpaInputs) -> dict[str, np.ndarray]:
    """The arrays of the call by argument name (the keyword ones only when given)."""
    named = dict(zip(NAMES, (inputs.query, inputs.key, inputs.value)))
    if inputs.attn_mask is not None:
        named["attn_mask"] = inputs.attn_mask
    named.update((name, value) for name, value in inputs.keywords.items() if isinstance(value, np.ndarray))
    return named


def keywords(inputs: SdpaInputs, results: bool = True) -> dict:
    """The keywords of the call: only those it needs (contract ``sdpa`` and its variants); with ``results`` False,
    without those that only ask for a further result (``return_lse``)."""
    kwargs = {}
    if inputs.attn_mask is not None:
        kwargs["attn_mask"] = inputs.attn_mask
    if inputs.is_causal:
        kwargs["is_causal"] = True
    if inputs.scale is not None:
        kwargs["scale"] = inputs.scale
    kwargs.update(inputs.call_keywords if results else inputs.keywords)
    return kwargs


def call(backend: Backend, inputs: SdpaInputs, layout: str = "contiguous") -> Invocation:
    """``fn(query, key, value, ...)`` with only the keywords the call needs (contract ``sdpa`` and its variants)."""
    kwargs = keywords(inputs)
    try:
        return invoke(backend, (inputs.query, inputs.key, inputs.value), kwargs, NAMES, layout, inputs.results)
    except BackendError as error:
        raise CheckFailure(str(error) + hint(error, features(inputs, layout)), cause=str(error)) from None


def features(inputs: SdpaInputs, layout: str = "contiguous") -> list[Feature]:
    """What the call asks of the backend, each with the declaration that marks it unsupported (for the hint after a
    ``NotImplementedError``): its variants, mask, layout, lengths and widths, scale and causal flag."""
    query, key, value = inputs.query, inputs.key, inputs.value
    found = [Feature(f"the keyword {', '.join(variant(name).keywords(parameter))}", name)
             for name, parameter in inputs.variants]
    found += mask_features(inputs.is_causal, inputs.attn_mask)
    found += layout_features(layout, query.shape[-2], key.shape[-2])
    if value.shape[-1] != query.shape[-1]:
        found.append(Feature(f"Ev != E (E = {query.shape[-1]}, Ev = {value.shape[-1]})", "value_width"))
    if inputs.scale is not None:
        found.append(Feature(f"an explicit scale ({inputs.scale:g})", "scale"))
    return found + causal_feature(inputs.is_causal)


def output(backend: Backend, inputs: SdpaInputs, layout: str = "contiguous") -> np.ndarray:
    """The backend's output as float64, after checking its shape (and, asked for with ``return_lse``, the lse's
    shape and dtype: a check that does not judge the lse still takes only a well-formed one)."""
    return output_and_lse(backend, inputs, layout)[0]


def output_and_lse(backend: Backend, inputs: SdpaInputs, layout: str = "contiguous") -> tuple[np.ndarray,
                                                                                                 np.ndarray | None]:
    """The backend's output as float64 and its lse as returned (None unless the call asks for it), after checking
    their shapes, ``(..., L, Ev)`` and ``(..., L)``, and the lse's dtype (:data:`LSE_DTYPES`)."""
    invocation = call(backend, inputs, layout)
    result, lse = invocation.output, invocation.results.get("lse")
    shape = inputs.output_shape()
    if result.shape != shape:
        raise CheckFailure(wrong_shape(result.shape, shape, LAYOUT))
    if lse is not None:
        if lse.shape != shape[:-1]:
            raise CheckFailure(lse_wrong_shape(lse.shape, shape[:-1]))
        accepted = lse_dtypes(name_of(inputs.query.dtype))
        if name_of(lse.dtype) not in accepted:
            raise CheckFailure(lse_wrong_dtype(name_of(lse.dtype), name_of(inputs.query.dtype), accepted))
    return as_float64(result), lse


def lse_dtypes(dtype: str) -> tuple[str, ...]:
    """The dtypes an lse may come back in for inputs of ``dtype``: float32 or wider (FlashAttention's float32 for every
    input), or the inputs' own (JAX's residual); it is judged at the precision of the dtype it comes in."""
    return tuple(dict.fromkeys(("float32", "float64", dtype)))


def expectation(backend: Backend, inputs: SdpaInputs, case: SdpaCase, masked_rows: str | None = None) -> Expectation:
    """The reference output and bound under the backend's declared precision and conventions."""
    declaration = backend.declaration
    precision = Precision.of(case.dtype, declaration.accumulation)
    return sdpa_expectation(inputs, precision, declaration.alignment,
                            masked_rows or declaration.masked_rows or "zeros")


def judge(backend: Backend, case: SdpaCase, inputs: SdpaInputs | None = None) -> None:
    """The output agrees with the reference within the bound of clause ``attention.accuracy`` (what it computes
    instead, the runner's diagnosis names: :mod:`kqv.conformance.diagnosis`)."""
    inputs = inputs or case.build()
    judged = expectation(backend, inputs, case)
    agree(output(backend, inputs), judged.expected, judged.bound)


def against(backend: Backend, case: SdpaCase, got: SdpaInputs, expected: SdpaInputs, what: str,
            heads: np.ndarray | None = None) -> None:
    """The backend's output on ``got`` agrees with its output on ``expected`` (whose heads, axis -3, are taken in the
    order ``heads`` when given), within the sum of their bounds and the difference of their references."""
    taken = (Ellipsis,) if heads is None else (Ellipsis, heads, slice(None), slice(None))
    out1, e1 = output(backend, got), expectation(backend, got, case)
    out2, e2 = output(backend, expected), expectation(backend, expected, case)
    agree(out1, out2[taken], e1.bound + e2.bound[taken] + np.abs(e1.expected - e2.expected[taken]), what=what)


def fresh(case: SdpaCase, shape: tuple[int, ...], salt: int, magnitude: float = 1.0) -> np.ndarray:
    """New standard normal entries (times ``magnitude``) in the case's dtype, from its seed and ``salt``."""
    rng = np.random.default_rng([case.seed, salt])
    return round_to(rng.standard_normal(shape) * magnitude, case.dtype)
