"""Calling an ``mha`` backend on a case and judging its output: the pieces every mha check shares."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend import BackendError, Invocation, invoke
from ...registry import CheckFailure, agree
from ...dtypes import as_float64
from ...messages import wrong_shape
from ...tolerance import Expectation, Precision
from ...unsupported import Feature, causal_feature, hint, layout_features, mask_features
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


def keywords(inputs: MhaInputs) -> dict[str, Any]:
    """The keywords of the call: the biases given, ``num_heads``, and the mask and causal flag where the case has
    them."""
    kwargs: dict[str, Any] = {f"b_{name}": getattr(inputs, f"b_{name}") for name in ALL_BIASES
                              if getattr(inputs, f"b_{name}") is not None}
    kwargs["num_heads"] = inputs.num_heads
    if inputs.attn_mask is not None:
        kwargs["attn_mask"] = inputs.attn_mask
    if inputs.is_causal:
        kwargs["is_causal"] = True
    return kwargs


def call(backend: Any, inputs: MhaInputs, layout: str = "contiguous") -> Invocation:
    """``fn(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, ..., *, num_heads, ...)`` with only the keywords the call needs."""
    try:
        return invoke(backend, tuple(getattr(inputs, name) for name in NAMES), keywords(inputs), NAMES, layout)
    except BackendError as error:
        raise CheckFailure(str(error) + hint(error, features(inputs, layout)), cause=str(error)) from None


def features(inputs: MhaInputs, layout: str = "contiguous") -> list[Feature]:
    """What the call asks of the backend, each with the declaration that marks it unsupported (for the hint after a
    ``NotImplementedError``): x_kv other than x_q, its mask, layout, lengths, widths, biases and causal flag."""
    h, d_model = inputs.num_heads, inputs.x_q.shape[-1]
    d_k, d_v = inputs.w_q.shape[-1] // h, inputs.w_v.shape[-1] // h
    found = [] if inputs.x_kv is inputs.x_q else [Feature("x_kv other than x_q", "cross_attention")]
    found += mask_features(inputs.is_causal, inputs.attn_mask)
    found += layout_features(layout, inputs.x_q.shape[-2], inputs.x_kv.shape[-2])
    if d_v != d_k:
        found.append(Feature(f"d_v != d_k (d_k = {d_k}, d_v = {d_v})", "value_width"))
    if h * d_k != d_model or h * d_v != d_model:
        found.append(Feature(f"num_heads * d_k = {h * d_k} and num_heads * d_v = {h * d_v} with d_model = {d_model}",
                             "heads_split_model", True))
    given = [name for name in ALL_BIASES if getattr(inputs, f"b_{name}") is not None]
    if given:
        found.append(Feature(f"the biases {', '.join('b_' + name for name in given)}", "biases"))
    return found + causal_feature(inputs.is_causal)


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
