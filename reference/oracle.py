"""The arbitrary-precision oracle: the formulas of the spec evaluated with mpmath.

Each function mirrors a float64 reference function, with the same arguments,
checks and conventions, plus ``dps`` (decimal digits of the working precision,
50 by default) and ``as_mpf``. The float64 inputs are converted to mpmath exactly,
every operation is carried out at ``dps`` digits (dot products and sums with
:func:`mpmath.fdot` and :func:`mpmath.fsum`), and the result is either returned as
an object array of :class:`mpmath.mpf` (``as_mpf=True``) or rounded once to the
nearest float64 (the default), which is the correctly rounded value of the exact
result whenever ``dps`` digits are enough to decide the rounding.

It runs the same stages as the float64 reference (:mod:`kqv.reference.stages`) in the
arithmetic :class:`~kqv.reference.arithmetic.Multiprecision`, so the two share every index rule and
convention and differ only in their numbers. The oracle loops in Python: it is meant for small inputs.
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np

from .arithmetic import MULTIPRECISION, to_mpf
from .backward import backward
from .backward_stages import Gradients, input_gradients
from .mha import check_mha_inputs, concat_heads, split_heads
from .prepare import Prepared, prepare
from .sdpa import attend, attend_with_lse
from .stages import drop_keys, masked_row_weights, softmax
from .validation import as_float64, as_mask, check_bool, check_count, check_grad_output, check_positive_real

DEFAULT_DPS = 50


def to_float64(x: Any) -> float:
    """Round the mpmath number ``x`` to the nearest float64 (ties to even; subnormals and overflow included)."""
    if not isinstance(x, mpmath.mpf):
        x = mpmath.mpf(x)  # an mpf is kept whole: mpf(x) would round it to the context's 53 bits, then again below
    if mpmath.isnan(x):
        return float("nan")
    if mpmath.isinf(x):
        return float("inf") if x > 0 else float("-inf")
    sign, mantissa, exponent, _ = x._mpf_
    if mantissa == 0:
        return -0.0 if sign else 0.0
    try:
        # Python's int / int is correctly rounded, including in the subnormal range.
        magnitude = mantissa / (1 << -exponent) if exponent < 0 else float(mantissa << exponent)
    except OverflowError:
        magnitude = float("inf")
    return -magnitude if sign else magnitude


def _finish(array: np.ndarray, as_mpf: bool) -> np.ndarray:
    """Return the object array of mpf as is, or rounded to float64."""
    if as_mpf:
        return array
    return np.vectorize(to_float64, otypes=[np.float64])(array) if array.size else array.astype(np.float64)


def _check_dps(dps: Any) -> int:
    return check_count("dps", dps, 15)


def _attention(query, key, value, attn_mask, is_causal, scale, causal_alignment, masked_rows, dps, **variants):
    """Validated oracle attention: the stages of :mod:`kqv.reference.stages` in mpmath,
    ``((P, empty, O, lse), convention)``;
    ``variants`` are the keywords of the variants (``enable_gqa``, ``window``, ``softcap``,
    ``alibi_slopes``, ``kv_lengths``, ``sinks``); also returns the convention the rows that keep no key
    follow (``"zeros"`` with sinks, clause ``sinks.empty-row``)."""
    call = prepare(query, key, value, attn_mask, is_causal, scale, causal_alignment=causal_alignment,
                   masked_rows=masked_rows, **variants)
    with mpmath.workdps(_check_dps(dps)):
        # clauses scores.scale.default (the exact 1/sqrt(E)) and scores.scale.explicit
        return attend_with_lse(call.in_mpmath(), MULTIPRECISION), call.masked_rows


def oracle_sdpa(query: Any, key: Any, value: Any, attn_mask: Any = None, is_causal: bool = False, scale: Any = None,
                *, causal_alignment: str = "top-left", masked_rows: str = "zeros", enable_gqa: bool = False,
                window: Any = None, softcap: Any = None, alibi_slopes: Any = None, kv_lengths: Any = None,
                sinks: Any = None, return_lse: bool = False, dps: int = DEFAULT_DPS,
                as_mpf: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``softmax(Q K^T * scale + mask) V`` at ``dps`` digits (clause ``attention.sdpa``), ``(..., L, Ev)``.

    Same arguments and conventions as
    :func:`kqv.reference.scaled_dot_product_attention` (without ``dropout_p``),
    except that the default scale is the exact ``1/sqrt(E)``. Returns float64
    (each element the rounding of the ``dps``-digit result) or, with
    ``as_mpf=True``, an object array of :class:`mpmath.mpf`. With ``return_lse``, ``(output, lse)``, the lse
    ``(..., L)`` of clause ``lse.definition`` at ``dps`` digits.
    """
    return_lse = check_bool("return_lse", return_lse)
    (_, _, output, lse), _ = _attention(query, key, value, attn_mask, is_causal, scale, causal_alignment, masked_rows,
                                        dps, enable_gqa=enable_gqa, window=window, softcap=softcap,
                                        alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks)
    return (_finish(output, as_mpf), _finish(lse, as_mpf)) if return_lse else _finish(output, as_mpf)


def oracle_sdpa_backward(query: Any, key: Any, value: Any, grad_output: Any, attn_mask: Any = None,
                         is_causal: bool = False, scale: Any = None, *, causal_alignment: str = "top-left",
                         masked_rows: str = "zeros", enable_gqa: bool = False, window: Any = None, softcap: Any = None,
                         alibi_slopes: Any = None, kv_lengths: Any = None, sinks: Any = None, dps: int = DEFAULT_DPS,
                         as_mpf: bool = False) -> Gradients:
    """The gradients ``(dQ, dK, dV, dsink)`` of attention given ``grad_output = dO`` at ``dps`` digits (clauses
    ``gradient.value``, ``gradient.weights``, ``gradient.scores``, ``gradient.query``, ``gradient.key``,
    ``gradient.masked-row``), as :func:`kqv.reference.backward.scaled_dot_product_attention_backward`.

    The same stages backward (:func:`kqv.reference.backward.backward`) in mpmath, with the exact ``1/sqrt(E)`` as
    the default scale; each gradient float64 (the rounding of its ``dps``-digit value) or, with ``as_mpf=True``, an
    object array of :class:`mpmath.mpf`.
    """
    call = prepare(query, key, value, attn_mask, is_causal, scale, causal_alignment=causal_alignment,
                   masked_rows=masked_rows, enable_gqa=enable_gqa, window=window, softcap=softcap,
                   alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks)
    grad_output = check_grad_output(grad_output, call.batch + (call.L, call.Ev))
    with mpmath.workdps(_check_dps(dps)):
        exact = call.in_mpmath()
        gradients = input_gradients(exact, np.shape(key), np.shape(value),
                                    *backward(exact, to_mpf(grad_output), MULTIPRECISION), MULTIPRECISION)
    return Gradients(*(None if g is None else _finish(g, as_mpf) for g in gradients))


def oracle_attention_weights(query: Any, key: Any, attn_mask: Any = None, is_causal: bool = False, scale: Any = None,
                             *, causal_alignment: str = "top-left", masked_rows: str = "zeros",
                             enable_gqa: bool = False, window: Any = None, softcap: Any = None,
                             alibi_slopes: Any = None, kv_lengths: Any = None, sinks: Any = None,
                             dps: int = DEFAULT_DPS, as_mpf: bool = False) -> np.ndarray:
    """The weights ``P (..., L, S)`` at ``dps`` digits, as :func:`kqv.reference.attention_weights`."""
    (weights, empty, _, _), convention = _attention(query, key, None, attn_mask, is_causal, scale, causal_alignment,
                                                    masked_rows, dps, enable_gqa=enable_gqa, window=window,
                                                    softcap=softcap, alibi_slopes=alibi_slopes, kv_lengths=kv_lengths,
                                                    sinks=sinks)
    with mpmath.workdps(_check_dps(dps)):
        weights = masked_row_weights(weights, empty, convention, MULTIPRECISION)
    return _finish(weights, as_mpf)


def oracle_softmax(x: Any, axis: int = -1, where: Any = None, *, dps: int = DEFAULT_DPS,
                   as_mpf: bool = False) -> np.ndarray:
    """``exp(x_j) / sum_k exp(x_k)`` over kept entries at ``dps`` digits (clause ``softmax.definition``).

    Same conventions as :func:`kqv.reference.softmax`: ``where`` selects the
    entries, ``-inf`` entries are not kept, rows that keep nothing are zeros.
    """
    dps = _check_dps(dps)
    x = as_float64("x", x)
    if x.ndim == 0:
        raise ValueError("x: expected an array with at least 1 dim, got a scalar")
    with mpmath.workdps(dps):
        x = to_mpf(x)
        if where is not None:
            drop_keys(x, np.broadcast_to(np.asarray(where, dtype=bool), x.shape), MULTIPRECISION)
        weights, _ = softmax(x, MULTIPRECISION, axis=axis)  # the softmax stage of the pipeline
    return _finish(weights, as_mpf)


def oracle_pe(length: int, d_model: int, base: Any = 10000, dps: int = DEFAULT_DPS, *,
              as_mpf: bool = False) -> np.ndarray:
    """``PE[pos, 2i] = sin(pos / base^(2i/d_model))``, ``PE[pos, 2i+1] = cos(...)`` at ``dps`` digits.

    Clauses ``pe.sinusoid`` and ``pe.odd-d-model``; ``base`` is taken exactly as
    the float64 it converts to.
    """
    length = check_count("length", length, 0)
    d_model = check_count("d_model", d_model, 1)
    base = check_positive_real("base", base)
    dps = _check_dps(dps)
    encoding = np.empty((length, d_model), dtype=object)
    with mpmath.workdps(dps):
        b = mpmath.mpf(base)
        for column in range(d_model):
            two_i = column - column % 2
            denominator = mpmath.power(b, mpmath.mpf(two_i) / d_model)
            for pos in range(length):
                angle = pos / denominator
                encoding[pos, column] = mpmath.sin(angle) if column % 2 == 0 else mpmath.cos(angle)
    return _finish(encoding, as_mpf)


def oracle_mha(x_q: Any, x_kv: Any, w_q: Any, w_k: Any, w_v: Any, w_o: Any, b_q: Any = None, b_k: Any = None,
               b_v: Any = None, b_o: Any = None, *, num_heads: int, attn_mask: Any = None, is_causal: bool = False,
               dps: int = DEFAULT_DPS, as_mpf: bool = False) -> np.ndarray:
    """Multi-head attention at ``dps`` digits, as :func:`kqv.reference.multi_head_attention`.

    Clauses ``projection.query``, ``projection.key``, ``projection.value``,
    ``mha.split``, ``mha.head`` (scale ``1/sqrt(d_k)``, exact), ``mha.concat`` and
    ``mha.output-projection``.
    """
    c = check_mha_inputs(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, num_heads, attn_mask, is_causal)
    dps = _check_dps(dps)
    B, L, d_model = c.x_q.shape
    S = c.x_kv.shape[1]
    h = c.num_heads
    d_k = c.weights["w_q"].shape[1] // h
    if d_k == 0:
        raise ValueError(f"w_q: the head width d_k = w_q.shape[1] / num_heads is 0 (w_q shape "
                         f"{c.weights['w_q'].shape}); 1/sqrt(d_k) is undefined")
    mask = None if c.attn_mask is None else as_mask(c.attn_mask, (B, h, L, S))  # (B or 1, 1, L, S)
    with mpmath.workdps(dps):
        x_q_mp, x_kv_mp = to_mpf(c.x_q), to_mpf(c.x_kv)
        weights = {name: to_mpf(w) for name, w in c.weights.items()}
        biases = {name: to_mpf(b) for name, b in c.biases.items()}
        query = _affine(x_q_mp, weights["w_q"], biases.get("b_q"))  # (B, L, h*d_k)
        key = _affine(x_kv_mp, weights["w_k"], biases.get("b_k"))  # (B, S, h*d_k)
        value = _affine(x_kv_mp, weights["w_v"], biases.get("b_v"))  # (B, S, h*d_v)
        call = Prepared(split_heads(query, h), split_heads(key, h), split_heads(value, h), (B, h),  # (B, h, n, d)
                        1 / mpmath.sqrt(d_k), True,  # clause mha.head: the per-head d_k, exactly
                        mask if mask is None or mask.dtype == np.bool_ else to_mpf(mask),
                        0 if is_causal else None, "zeros")
        _, _, heads = attend(call, MULTIPRECISION)  # (B, h, L, d_v), clauses mha.split, mha.head
        concat = concat_heads(heads)  # (B, L, h*d_v), clause mha.concat
        output = _affine(concat, weights["w_o"], biases.get("b_o"))  # (B, L, d_model), clause mha.output-projection
    return _finish(output[0] if c.unbatched else output, as_mpf)


def _affine(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x weight + bias`` on mpf arrays ``(..., n, k) -> (..., n, m)``, each element one correctly rounded
    :func:`mpmath.fdot` (clauses ``projection.*``, ``mha.output-projection``)."""
    out = np.empty(x.shape[:-1] + (weight.shape[1],), dtype=object)
    for index in np.ndindex(out.shape):
        *row, column = index
        terms = list(x[tuple(row)]) + ([] if bias is None else [bias[column]])
        factors = list(weight[:, column]) + ([] if bias is None else [mpmath.mpf(1)])
        out[index] = mpmath.fdot(terms, factors)
    return out
