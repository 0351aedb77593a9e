"""The bound of an ``mha`` call: the sdpa model carried through the projections (clause ``attention.accuracy``)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from kqv.reference.mha import concat_heads, split_heads
from kqv.reference.prepare import Prepared, prepare
from kqv.reference.sdpa import attend
from kqv.reference.stages import scores

from ...dtypes import as_float64
from ...tolerance import Expectation, Precision, projection, row_exponent_error
from .case import MhaInputs


class Heads(NamedTuple):
    """The heads of an ``mha`` call and their forward errors (:func:`heads_model`), float64: the pieces the output's
    bound and the gradients' bound (:mod:`kqv.conformance.kinds.mha.backward_bound`) share."""

    f64: dict[str, np.ndarray | None]  # every array of the call as float64, None where not given
    query: np.ndarray  # (B, h, L, d_k)
    e_query: np.ndarray  # (B, h, L, d_k): the error of the computed projection
    key: np.ndarray  # (B, h, S, d_k)
    e_key: np.ndarray  # (B, h, S, d_k)
    value: np.ndarray  # (B, h, S, d_v)
    e_value: np.ndarray  # (B, h, S, d_v)
    call: Prepared  # the heads' sdpa call
    inherited: np.ndarray  # (B, h, L, S): the error each score inherits from the projections
    weights: np.ndarray  # (B, h, L, S): zeros on empty rows
    keep: np.ndarray  # (B, h, L, S)
    heads: np.ndarray  # (B, h, L, d_v): by the convention on empty rows
    e_heads: np.ndarray  # (B, h, L, d_v)


def heads_model(inputs: MhaInputs, precision: Precision, masked_rows: str = "zeros", alignment: str = "top-left",
                scale: float | None = None) -> Heads:
    """The projections and heads of one ``mha`` call with their errors: each projection ``x W + b`` is off by
    ``expm1((n + 2) u_a) (|x||W| + |b|) + u_s |y|``; a head's scores then carry ``|s| (e_Q |K|^T + |Q| e_K^T + e_Q
    e_K^T)`` more error (added to ``D_i``) and its output ``exp(2 D_i + c) P e_V`` more."""
    f64 = {name: (None if a is None else as_float64(a)) for name, a in vars(inputs).items()
           if isinstance(a, np.ndarray) or a is None}
    h = inputs.num_heads
    query, e_query = projection(f64["x_q"], f64["w_q"], f64["b_q"], precision)  # (B, L, h*d_k)
    key, e_key = projection(f64["x_kv"], f64["w_k"], f64["b_k"], precision)  # (B, S, h*d_k)
    value, e_value = projection(f64["x_kv"], f64["w_v"], f64["b_v"], precision)  # (B, S, h*d_v)
    query, e_query, key, e_key, value, e_value = (split_heads(a, h) for a in
                                                  (query, e_query, key, e_key, value, e_value))  # (B, h, n, d)
    B, _, L, d_k = query.shape
    S = key.shape[-2]
    mask = f64["attn_mask"] if inputs.attn_mask is None or inputs.attn_mask.dtype != np.bool_ else inputs.attn_mask
    mask = None if mask is None else mask[:, None]  # (B or 1, 1, L, S): the same for every head
    call = prepare(query, key, value, mask, inputs.is_causal, scale, causal_alignment=alignment,
                   masked_rows=masked_rows)
    scale = call.scale  # clause mha.head: the per-head d_k, unless a scale was given
    keep = call.kept()  # (B, h, L, S)
    additive = call.biases()  # (B, h, L, S)
    weights, _, heads = attend(call)  # (B, h, L, S) zeros on empty rows, (B, h, L, d_v) by the convention
    x = scores(query, key, scale) + additive  # (B, h, L, S)
    A = scores(np.abs(query), np.abs(key), scale)  # (B, h, L, S): |s| |Q| |K|^T
    key_t = np.swapaxes
    inherited = scale * (e_query @ key_t(np.abs(key), -1, -2) + np.abs(query) @ key_t(e_key, -1, -2)
                         + e_query @ key_t(e_key, -1, -2))  # (B, h, L, S)
    exponent = row_exponent_error(A, x, additive, keep, d_k, precision, extra=inherited)  # (B, h, L)
    growth = 2 * exponent + 4 * precision.storage + (4 * S + 4) * precision.accumulation
    e_heads = np.expm1(growth)[..., None] * (weights @ np.abs(value)) + np.exp(growth)[..., None] * (weights @ e_value) \
        + precision.storage * np.abs(np.nan_to_num(heads)) \
        + 2 * precision.underflow * (keep.astype(np.float64) @ np.abs(value) + S + 1)
    empty = ~np.any(keep, axis=-1)  # (B, h, L)
    if np.any(empty):
        row_err = np.zeros_like(heads)
        if masked_rows == "uniform" and S:
            row_err = np.expm1((S + 2) * precision.accumulation + precision.storage) \
                * np.abs(value).mean(-2, keepdims=True) + e_value.mean(-2, keepdims=True)  # (B, h, 1, d_v)
        e_heads = np.where(empty[..., None], row_err, e_heads)
    return Heads(f64, query, e_query, key, e_key, value, e_value, call, inherited, weights, keep, heads, e_heads)


def mha_expectation(inputs: MhaInputs, precision: Precision, masked_rows: str = "zeros",
                    alignment: str = "top-left", scale: float | None = None) -> Expectation:
    """Reference output and bound of one ``mha`` call, the sdpa model carried through the projections.

    ``scale`` replaces the heads' ``1/sqrt(d_k)`` (clause ``mha.head``) when given: a departure's formula.

    The heads and their errors are those of :func:`heads_model`; the output projection carries the heads' error
    through ``|W_O|`` and adds its own.
    """
    model = heads_model(inputs, precision, masked_rows, alignment, scale)
    concat = concat_heads(model.heads)  # (B, L, h*d_v)
    e_concat = concat_heads(model.e_heads)  # (B, L, h*d_v)
    output, e_output = projection(concat, model.f64["w_o"], model.f64["b_o"], precision)  # (B, L, d_model)
    e_output = e_output + np.nan_to_num(e_concat) @ np.abs(model.f64["w_o"])
    empty = ~np.any(model.keep, axis=-1)  # (B, h, L)
    return Expectation(output, np.nan_to_num(e_output, nan=0.0), model.weights, empty[:, 0], model.keep[:, 0])
