"""Shared pieces of the backward tests: small seeded calls with every option, and a float64 error bound.

Each case is small (``L, S, E <= 4``): the finite differences and the mpmath oracle loop over it. The bound is a
first-order forward-error model of the float64 backward, in units of ``u = 2**-53``, built like the tolerance
model of the forward: a correct float64 backward stays below it, one computed in float32 does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kqv.reference import scaled_dot_product_attention
from kqv.reference.backward_stages import Gradients, input_gradients
from kqv.reference.prepare import prepare
from kqv.reference.sdpa import masked_scores
from kqv.reference.stages import softmax_with_lse

U = 2.0**-53
TINY = np.finfo(np.float64).tiny


@dataclass
class GradCase:
    """One call of the backward: the arrays, ``dO`` and the keyword options of the forward."""

    name: str
    query: np.ndarray
    key: np.ndarray
    value: np.ndarray
    grad_output: np.ndarray
    options: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name

    @property
    def sinks(self) -> np.ndarray | None:
        return self.options.get("sinks")

    def inputs(self) -> dict[str, np.ndarray]:
        """The arrays that have a gradient, by the field of :class:`Gradients` that holds it."""
        named = {"query": self.query, "key": self.key, "value": self.value}
        return named if self.sinks is None else {**named, "sinks": self.sinks}

    def with_inputs(self, **arrays: np.ndarray) -> dict:
        """The positional arrays and options of a forward call, with some inputs replaced."""
        given = {**self.inputs(), **arrays}
        options = dict(self.options)
        if "sinks" in given:
            options["sinks"] = given["sinks"]
        return dict(query=given["query"], key=given["key"], value=given["value"], **options)


def _case(rng: np.random.Generator, name: str, query: tuple, key: tuple, value: tuple, **options) -> GradCase:
    arrays = [rng.standard_normal(shape) for shape in (query, key, value)]
    output = scaled_dot_product_attention(*arrays, **options)
    return GradCase(name, *arrays, rng.standard_normal(output.shape), options)


def grad_cases(seed: int = 0) -> list[GradCase]:
    """One small case per option of the forward (``L = 3``, ``S = 4``, ``E = 3``, ``Ev = 2`` unless said)."""
    rng = np.random.default_rng(seed)
    empty_row = np.ones((3, 4), dtype=bool)
    empty_row[1] = False  # query row 1 keeps no key
    additive = np.where(rng.random((3, 4)) < 0.7, rng.standard_normal((3, 4)), -np.inf)
    additive[0, 0], additive[2] = 0.5, -np.inf  # row 0 keeps a key, row 2 none
    plain = ((3, 3), (4, 3), (4, 2))
    heads = ((2, 3, 3), (2, 4, 3), (2, 4, 2))
    return [
        _case(rng, "plain", *plain),
        _case(rng, "bool mask, zeros", *plain, attn_mask=empty_row),
        _case(rng, "bool mask, uniform", *plain, attn_mask=empty_row, masked_rows="uniform"),
        _case(rng, "float mask, uniform", *plain, attn_mask=additive, masked_rows="uniform"),
        _case(rng, "causal top-left", *plain, is_causal=True),
        _case(rng, "causal bottom-right, L > S", (4, 3), (3, 3), (3, 2), is_causal=True,
              causal_alignment="bottom-right", masked_rows="uniform"),
        _case(rng, "negative scale", *plain, scale=-0.7),
        _case(rng, "broadcast batch", (2, 3, 3), (4, 3), (1, 4, 2)),
        _case(rng, "gqa", (4, 3, 3), (2, 4, 3), (2, 4, 2), enable_gqa=True),
        _case(rng, "window", *heads, window=(1, 0), causal_alignment="bottom-right"),
        _case(rng, "softcap", (3, 3), (4, 3), (4, 2), softcap=0.8, scale=2.0),
        _case(rng, "alibi", *heads, alibi_slopes=np.array([0.5, 0.25])),
        _case(rng, "sinks", *heads, sinks=rng.standard_normal(2), attn_mask=empty_row),
        _case(rng, "sinks per batch, gqa", (2, 2, 3, 3), (2, 1, 4, 3), (2, 1, 4, 2), enable_gqa=True,
              sinks=rng.standard_normal((2, 2))),
        _case(rng, "kv_lengths", (2, 1, 3, 3), (2, 1, 4, 3), (2, 1, 4, 2), kv_lengths=np.array([2, 4]),
              is_causal=True, causal_alignment="bottom-right"),
    ]


def _gamma(n) -> float:
    return n * U


def _t(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)  # (..., n, m) -> (..., m, n)


def backward_bound(case: GradCase) -> dict[str, np.ndarray]:
    """Allowed float64 error of each gradient element, by input name, first order in ``u``, times 4.

    From the magnitudes of the reference's own ``P`` and of the inputs: the scores are off by
    ``eps_x = (E + 2) u |s| |Q||K|^T + u |x|``, so ``P`` is off relatively by ``rho_i = 2 max_j (eps_x +
    u |x_ij - m_i|) + (S + 4) u``; ``dP`` by ``Ev u |dO||V|^T``; ``D_i`` and ``dA = P (dP - D)`` carry both; a
    soft cap's slope is off by ``eps_raw / c + 3u``; ``dQ = s dA K``, ``dK = s dA^T Q`` and ``dV = P^T dO`` add
    their sums' rounding, and the sums over broadcast dims and GQA groups theirs. Rows that keep no key get NaN
    or exact zeros in every form and add nothing.
    """
    call = prepare(case.query, case.key, case.value, **case.options)
    x = masked_scores(call)  # (*batch, L, S)
    weights, empty, lse = softmax_with_lse(x, sink=call.row_sinks())
    kept, finite_x = x != -np.inf, np.where(x != -np.inf, x, 0.0)
    S, E, Ev, L, s = call.S, call.E, call.Ev, call.L, abs(call.scale)
    query, key, value, d_output = (np.abs(a) for a in (call.query, call.key, call.value, case.grad_output))
    raw_error = _gamma(E + 2) * s * (query @ _t(key))  # (*batch, L, S): the error of s Q K^T
    shift = np.max(np.where(kept, x, -np.inf), axis=-1, keepdims=True, initial=-np.inf)  # (*batch, L, 1): m
    shift = np.where(empty, 0.0, shift) if call.sinks is None else np.maximum(shift, call.row_sinks())
    exponent_error = raw_error + U * np.abs(finite_x) + U * np.abs(finite_x - shift)
    rho = 2 * np.max(np.where(kept, exponent_error, 0.0), axis=-1, keepdims=True, initial=0.0) + _gamma(S + 4)
    d_weights = d_output @ _t(value)  # (*batch, L, S): bounds |dP|
    row_sum = np.sum(weights * d_weights, axis=-1, keepdims=True)  # (*batch, L, 1): bounds |D|
    row_sum_error = np.sum(weights * (rho + _gamma(Ev + S)) * d_weights, axis=-1, keepdims=True)
    d_scores = weights * (d_weights + row_sum)  # (*batch, L, S): bounds |dA|
    d_scores_error = weights * ((rho + 2 * U) * (d_weights + row_sum) + _gamma(Ev) * d_weights + row_sum_error)
    if call.softcap is not None:
        d_scores_error = d_scores_error + d_scores * (raw_error / call.softcap + 3 * U)
    empty_rows = np.sum(d_output, axis=-2, keepdims=True)  # (*batch, 1, Ev): bounds the uniform rows' share
    share = None if call.sinks is None else np.exp(call.row_sinks() - lse)  # (*batch, L, 1): p_sink
    magnitudes = (s * d_scores @ key, s * _t(d_scores) @ query, _t(weights) @ d_output + empty_rows,
                  None if share is None else np.sum(share * row_sum, axis=-2)[..., 0])
    errors = (s * (d_scores_error @ key) + _gamma(S + 1) * magnitudes[0],
              s * (_t(d_scores_error) @ query) + _gamma(L + 1) * magnitudes[1],
              (_t(weights) * _t(rho)) @ d_output + _gamma(L + 1) * magnitudes[2],
              None if share is None else np.sum(share * ((rho + _gamma(L + 2)) * row_sum + row_sum_error),
                                                axis=-2)[..., 0])
    shapes = np.shape(case.key), np.shape(case.value)
    summed = _gamma(max(1, int(np.prod(call.batch, dtype=np.int64))))  # a reduced element sums at most that many
    return {name: 4 * (error + summed * magnitude) + TINY
            for name, error, magnitude in zip(Gradients._fields, input_gradients(call, *shapes, *errors),
                                              input_gradients(call, *shapes, *magnitudes)) if error is not None}
