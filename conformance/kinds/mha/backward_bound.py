"""The bound of the gradients of an ``mha`` call (clauses ``mha.gradient.inputs``, ``mha.gradient.weights``): the sdpa
backward's bound (:mod:`kqv.conformance.kinds.sdpa.backward_bound`) in each head, with the projections' rounding
carried through, in the same two-precision model; docs/error-model.md derives it.

Every product ``c = a b`` of ``n``-term dot products whose factors are off by ``e_a`` and ``e_b`` is off by (first
order in each error, the terms ``e_a e_b`` kept)::

    |c^ - c| <= e_a |b| + |a| e_b + e_a e_b + expm1((n + 2) u_a) (|a| + e_a)(|b| + e_b) + u_s |c| + 2 eta_s (n + 1)

(:func:`product_error`). The chain, with the forward's errors ``e_Q, e_K, e_V`` of the projections and ``e_H`` of
the heads (:func:`~kqv.conformance.kinds.mha.bound.heads_model`):

- ``dH = dY W_O^T`` (``n = d_model``) and ``dW_O = H^T dY``, ``db_O = 1^T dY`` (``n = B L``);
- each head's ``(dQ, dK, dV)`` from its block of ``dH`` within the sdpa backward's bound, its weights' exponents off
  by the scores' inherited error too (added to ``D_i``), plus what the errors of its inputs carry through the
  chain: ``e_dO`` and ``e_V`` reach ``dA`` as ``T_ij = e^lambda_i P_ij (W'_ij + Y'_i)`` with
  ``W' = |dO| e_V^T + e_dO (|V| + e_V)^T`` and ``Y'_i = sum_j P_ij W'_ij``; ``dQ = s dA K`` and ``dK = s dA^T Q`` add
  ``|s| (T (|K| + e_K) + Z e_K)`` and ``|s| (T^T (|Q| + e_Q) + Z^T e_Q)`` (``Z = P (W + Y)``, which bounds ``|dA|``),
  and ``dV = P^T dO`` adds ``(e^lambda P + omega)^T e_dO``;
- ``dX_q = dQ W_Q^T`` (``n = h d_k``), ``dX_kv = dK W_K^T + dV W_V^T`` (``n = h (d_k + d_v)``, the two products
  perhaps stored before the sum: ``u_s`` of each), ``dW_Q = X_q^T dQ``, ``dW_K = X_kv^T dK``, ``dW_V = X_kv^T dV``
  and the biases' row sums (``n = B L`` or ``B S``).
"""

from __future__ import annotations

import numpy as np

from kqv.reference.backward import backward
from kqv.reference.backward_stages import Gradients, input_gradients
from kqv.reference.mha import concat_heads, split_heads
from kqv.reference.mha_backward import MhaGradients, multi_head_attention_backward

from ...dtypes import as_float64
from ...tolerance import Precision, projection
from ..sdpa.backward_bound import backward_bound, weight_errors, weight_flush
from .bound import Heads, heads_model
from .case import MhaInputs

GRADIENTS = ("x_q", "x_kv", "w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o")


def product_error(a: np.ndarray, e_a: np.ndarray, b: np.ndarray, e_b: np.ndarray, precision: Precision) -> np.ndarray:
    """The error of ``a @ b`` computed from factors off by ``e_a`` and ``e_b`` (module docstring), without the store
    ``u_s |c|``; ``a`` and ``b`` are the exact factors (their magnitudes are taken here), ``n = a.shape[-1]``."""
    n = a.shape[-1]
    a, b = np.abs(a), np.abs(b)
    return e_a @ b + a @ e_b + e_a @ e_b + np.expm1((n + 2) * precision.accumulation) * ((a + e_a) @ (b + e_b)) \
        + 2 * precision.underflow * (n + 1)


def _rows(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, x.shape[-1])  # (B, n, d) -> (B*n, d): the batch entries are rows of the sums too


def _over_rows(x: np.ndarray, e_x: np.ndarray, g: np.ndarray, e_g: np.ndarray, precision: Precision) -> np.ndarray:
    """The error of ``x^T g`` summed over the batch and the rows, ``(B, n, a)``, ``(B, n, b)`` -> ``(a, b)``."""
    return product_error(_rows(x).T, _rows(e_x).T, _rows(g), _rows(e_g), precision)


def _bias(g: np.ndarray, e_g: np.ndarray, precision: Precision) -> np.ndarray:
    """The error of ``1^T g``, the row sums of ``g (B, n, b)`` -> ``(b,)``."""
    ones = np.ones((1, g.shape[0] * g.shape[1]))  # (1, B*n)
    return product_error(ones, 0 * ones, _rows(g), _rows(e_g), precision)[0]


def _carried(model: Heads, d_heads: np.ndarray, e_d_heads: np.ndarray, expected: Gradients, precision: Precision,
             extra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bound of each head's ``(dQ, dK, dV)``, ``(B, h, n, d)`` each: the sdpa backward's on exact inputs plus
    what the errors of ``Q``, ``K``, ``V`` and ``dO`` carry through the chain (module docstring); under ``uniform``
    a row that keeps no key passes ``e_dO / S`` of its own to every value row."""
    call = model.call
    inner = backward_bound(call, d_heads, precision, expected, call.key.shape, call.value.shape, extra)
    weights, keep, log_error = weight_errors(call, precision, extra)  # (B, h, L, S), (B, h, L, 1)
    grown = np.where(keep, np.exp(log_error) * weights, 0.0)  # (B, h, L, S): e^lambda P
    d_out, value = np.abs(d_heads), np.abs(model.value)  # (B, h, L, d_v), (B, h, S, d_v)
    swap = (lambda x: np.swapaxes(x, -1, -2))  # (..., n, m) -> (..., m, n)
    W = d_out @ swap(value)  # (B, h, L, S): bounds |dP|
    Z = np.where(keep, weights * (W + np.sum(weights * W, axis=-1, keepdims=True)), 0.0)  # bounds |dA|
    W_err = d_out @ swap(model.e_value) + e_d_heads @ swap(value + model.e_value)  # (B, h, L, S): W'
    T = grown * (W_err + np.sum(weights * W_err, axis=-1, keepdims=True))  # (B, h, L, S)
    s = abs(call.scale)
    key, query = np.abs(model.key), np.abs(model.query)
    d_query = inner.query + s * (T @ (key + model.e_key) + Z @ model.e_key)  # (B, h, L, d_k)
    d_key = inner.key + s * (swap(T) @ (query + model.e_query) + swap(Z) @ model.e_query)  # (B, h, S, d_k)
    flush = np.where(keep, weight_flush(precision), 0.0)  # (B, h, L, S)
    d_value = inner.value + swap(grown + flush) @ e_d_heads  # (B, h, S, d_v)
    empty = ~np.any(keep, axis=-1, keepdims=True)  # (B, h, L, 1)
    if call.masked_rows == "uniform" and call.S:
        d_value = d_value + np.sum(np.where(empty, e_d_heads, 0.0), axis=-2, keepdims=True) / call.S  # (B, h, 1, d_v)
    return d_query, d_key, d_value


def mha_backward_bound(inputs: MhaInputs, grad_output: np.ndarray, precision: Precision, expected: MhaGradients,
                       masked_rows: str = "zeros", alignment: str = "top-left") -> MhaGradients:
    """The bound of each gradient of :class:`~kqv.reference.mha_backward.MhaGradients` (module docstring) at
    ``precision``, from the inputs of the call (batched, as every case is), ``dY`` (float64, ``(B, L, d_model)``)
    and the exact gradients ``expected``; None for a bias not given."""
    u_s = precision.storage
    model = heads_model(inputs, precision, masked_rows, alignment)
    f64, h, call = model.f64, inputs.num_heads, model.call
    x_q, x_kv, dy = f64["x_q"], f64["x_kv"], grad_output  # (B, L, d_model), (B, S, d_model), (B, L, d_model)
    d_concat, e_d_concat = projection(dy, f64["w_o"].T, None, precision)  # (B, L, h*d_v): dH = dY W_O^T
    d_heads, e_d_heads = split_heads(d_concat, h), split_heads(e_d_concat, h)  # (B, h, L, d_v)
    exact = input_gradients(call, call.key.shape, call.value.shape, *backward(call, d_heads))  # (B, h, n, d) each
    extra = np.max(np.where(model.keep, model.inherited, 0.0), axis=-1, initial=0.0)  # (B, h, L)
    e_dq, e_dk, e_dv = (concat_heads(e) for e in _carried(model, d_heads, e_d_heads, exact, precision, extra))
    dq, dk, dv = (concat_heads(g) for g in exact[:3])  # (B, L, h*d_k), (B, S, h*d_k), (B, S, h*d_v)
    w_q, w_kv = f64["w_q"].T, np.concatenate([f64["w_k"].T, f64["w_v"].T])  # (h*d_k, d), (h*(d_k+d_v), d)
    head_out, e_head_out = concat_heads(model.heads), np.nan_to_num(concat_heads(model.e_heads))  # (B, L, h*d_v)
    zero = np.zeros_like
    bound = {
        "x_q": product_error(dq, e_dq, w_q, zero(w_q), precision),
        "x_kv": product_error(np.concatenate([dk, dv], -1), np.concatenate([e_dk, e_dv], -1), w_kv, zero(w_kv),
                              precision) + u_s * (np.abs(dk @ f64["w_k"].T) + np.abs(dv @ f64["w_v"].T)),
        "w_q": _over_rows(x_q, zero(x_q), dq, e_dq, precision),
        "w_k": _over_rows(x_kv, zero(x_kv), dk, e_dk, precision),
        "w_v": _over_rows(x_kv, zero(x_kv), dv, e_dv, precision),
        "w_o": _over_rows(head_out, e_head_out, dy, zero(dy), precision),
        "b_q": _bias(dq, e_dq, precision), "b_k": _bias(dk, e_dk, precision), "b_v": _bias(dv, e_dv, precision),
        "b_o": _bias(dy, zero(dy), precision),
    }
    return MhaGradients(**{name: None if getattr(expected, name) is None else
                           np.nan_to_num(bound[name], nan=np.inf) + u_s * np.abs(getattr(expected, name))
                           for name in GRADIENTS})


def mha_backward_expectation(inputs: MhaInputs, grad_output: np.ndarray, precision: Precision,
                             masked_rows: str = "zeros", alignment: str = "top-left") -> tuple[MhaGradients,
                                                                                                 MhaGradients]:
    """``(expected, bound)``: the reference's gradients (:func:`kqv.reference.multi_head_attention_backward`) of the
    call given ``dY`` (float64) and their bound, that of an implementation at ``precision`` plus the reference's own
    at float64 (as :func:`~kqv.conformance.kinds.sdpa.backward_bound.backward_expectation` adds it)."""
    arrays = {name: None if getattr(inputs, name) is None else as_float64(getattr(inputs, name)) for name in GRADIENTS}
    mask = inputs.attn_mask
    mask = mask if mask is None or mask.dtype == np.bool_ else as_float64(mask)
    expected = multi_head_attention_backward(**arrays, grad_output=grad_output, num_heads=inputs.num_heads,
                                             attn_mask=mask, is_causal=inputs.is_causal, masked_rows=masked_rows,
                                             causal_alignment=alignment)
    bound = mha_backward_bound(inputs, grad_output, precision, expected, masked_rows, alignment)
    own = mha_backward_bound(inputs, grad_output, Precision.of("float64"), expected, masked_rows, alignment)
    return expected, MhaGradients(**{name: None if getattr(bound, name) is None else
                                     getattr(bound, name) + getattr(own, name) for name in GRADIENTS})
