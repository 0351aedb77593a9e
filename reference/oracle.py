"""The arbitrary-precision oracle: the formulas of the spec evaluated with mpmath.

Each function mirrors a float64 reference function, with the same arguments,
checks and conventions, plus ``dps`` (decimal digits of the working precision,
50 by default) and ``as_mpf``. The float64 inputs are converted to mpmath exactly,
every operation is carried out at ``dps`` digits (dot products and sums with
:func:`mpmath.fdot` and :func:`mpmath.fsum`), and the result is either returned as
an object array of :class:`mpmath.mpf` (``as_mpf=True``) or rounded once to the
nearest float64 (the default), which is the correctly rounded value of the exact
result whenever ``dps`` digits are enough to decide the rounding.

The oracle loops in Python: it is meant for small inputs.
"""

from __future__ import annotations

from typing import Any, Sequence

import mpmath
import numpy as np

from .masking import combine_masks
from .mha import check_mha_inputs
from .validation import (MASKED_ROWS, as_float64, check_attention_shapes, check_choice, check_count,
                         check_positive_real, check_scale)

DEFAULT_DPS = 50


def to_float64(x: Any) -> float:
    """Round the mpmath number ``x`` to the nearest float64 (ties to even; subnormals and overflow included)."""
    x = mpmath.mpf(x)
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


def _to_mpf(array: np.ndarray) -> np.ndarray:
    """Float64 array -> object array of mpf, exactly."""
    out = np.empty(array.shape, dtype=object)
    for index in np.ndindex(array.shape):
        out[index] = mpmath.mpf(float(array[index]))
    return out


def _check_dps(dps: Any) -> int:
    return check_count("dps", dps, 15)


def _softmax_row(x: Sequence[Any], keep: Sequence[bool]) -> list[Any] | None:
    """Exact-ish softmax of the kept entries of one row; None when nothing is kept (clause ``softmax.definition``)."""
    kept = [j for j, k in enumerate(keep) if k and x[j] != mpmath.ninf]
    weights = [mpmath.mpf(0)] * len(x)
    if not kept:
        return None
    m = max(x[j] for j in kept)  # clause softmax.stable: the shift cancels, it only keeps exp in range
    exps = {j: mpmath.exp(x[j] - m) for j in kept}
    total = mpmath.fsum(exps.values())
    for j in kept:
        weights[j] = exps[j] / total
    return weights


def _attention_2d(q, k, v, keep, additive, scale, masked_rows):
    """One batch element: ``q (L, E)``, ``k (S, E)``, ``v (S, Ev)`` mpf arrays -> ``(P (L, S), O (L, Ev))``."""
    L, S, ev = q.shape[0], k.shape[0], v.shape[1]
    weights = np.empty((L, S), dtype=object)
    output = np.empty((L, ev), dtype=object)
    for i in range(L):
        scores = []
        for j in range(S):
            x = scale * mpmath.fdot(q[i], k[j]) if keep[i, j] else mpmath.ninf  # clause scores.dot-product
            if additive is not None and keep[i, j]:
                x += additive[i, j]  # clause mask.additive
            scores.append(x)
        row = _softmax_row(scores, keep[i])
        if row is not None:
            weights[i] = row
            for c in range(ev):  # clause output.weighted-sum; masked keys (weight 0) are skipped
                output[i, c] = mpmath.fdot([row[j] for j in range(S) if keep[i, j]],
                                           [v[j, c] for j in range(S) if keep[i, j]])
        elif masked_rows == "zeros":  # clause mask.fully-masked-row
            weights[i] = [mpmath.mpf(0)] * S
            output[i] = [mpmath.mpf(0)] * ev
        elif masked_rows == "nan":
            weights[i] = [mpmath.nan] * S
            output[i] = [mpmath.nan] * ev
        else:  # uniform: the mean of v over all S keys (0 when S = 0, an empty sum)
            weights[i] = [mpmath.mpf(1) / S] * S
            output[i] = [mpmath.fsum(v[:, c]) / S if S else mpmath.mpf(0) for c in range(ev)]
    return weights, output


def _attention(query, key, value, attn_mask, is_causal, scale, causal_alignment, masked_rows, dps):
    """Validated oracle attention on broadcast batches: returns object arrays ``(P, O)``."""
    check_choice("masked_rows", masked_rows, MASKED_ROWS)
    dps = _check_dps(dps)
    query = as_float64("query", query)
    key = as_float64("key", key)
    value = as_float64("value", value)
    batch = check_attention_shapes(query, key, value)
    (L, e), S, ev = query.shape[-2:], key.shape[-2], value.shape[-1]
    if scale is None and e == 0:
        raise ValueError(f"scale: the default 1/sqrt(E) is undefined for E=0 (query shape {query.shape}); "
                         "pass an explicit scale")
    explicit = None if scale is None else check_scale(scale)
    masks = combine_masks(attn_mask, is_causal, batch + (L, S), causal_alignment)
    keep = np.broadcast_to(masks.keep, batch + (L, S))
    additive = None if masks.additive is None else np.broadcast_to(masks.additive, batch + (L, S))
    query = np.broadcast_to(query, batch + (L, e))  # (..., L, E)
    key = np.broadcast_to(key, batch + (S, e))  # (..., S, E)
    value = np.broadcast_to(value, batch + (S, ev))  # (..., S, Ev)
    weights = np.empty(batch + (L, S), dtype=object)
    output = np.empty(batch + (L, ev), dtype=object)
    with mpmath.workdps(dps):
        # clauses scores.scale.default (the exact 1/sqrt(E)) and scores.scale.explicit
        s = 1 / mpmath.sqrt(e) if explicit is None else mpmath.mpf(explicit)
        for index in np.ndindex(batch):
            weights[index], output[index] = _attention_2d(
                _to_mpf(query[index]), _to_mpf(key[index]), _to_mpf(value[index]), keep[index],
                None if additive is None else _to_mpf(additive[index]), s, masked_rows)
    return weights, output


def oracle_sdpa(query: Any, key: Any, value: Any, attn_mask: Any = None, is_causal: bool = False, scale: Any = None,
                *, causal_alignment: str = "top-left", masked_rows: str = "zeros", dps: int = DEFAULT_DPS,
                as_mpf: bool = False) -> np.ndarray:
    """``softmax(Q K^T * scale + mask) V`` at ``dps`` digits (clause ``attention.sdpa``), ``(..., L, Ev)``.

    Same arguments and conventions as
    :func:`kqv.reference.scaled_dot_product_attention` (without ``dropout_p``),
    except that the default scale is the exact ``1/sqrt(E)``. Returns float64
    (each element the rounding of the ``dps``-digit result) or, with
    ``as_mpf=True``, an object array of :class:`mpmath.mpf`.
    """
    _, output = _attention(query, key, value, attn_mask, is_causal, scale, causal_alignment, masked_rows, dps)
    return _finish(output, as_mpf)


def oracle_attention_weights(query: Any, key: Any, attn_mask: Any = None, is_causal: bool = False, scale: Any = None,
                             *, causal_alignment: str = "top-left", masked_rows: str = "zeros",
                             dps: int = DEFAULT_DPS, as_mpf: bool = False) -> np.ndarray:
    """The weights ``P (..., L, S)`` at ``dps`` digits, as :func:`kqv.reference.attention_weights`."""
    query = as_float64("query", query)
    value = np.zeros(np.shape(key)[:-1] + (0,))  # (..., S, 0): no value needed
    weights, _ = _attention(query, key, value, attn_mask, is_causal, scale, causal_alignment, masked_rows, dps)
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
    keep = np.ones(x.shape, dtype=bool) if where is None else np.broadcast_to(np.asarray(where, dtype=bool), x.shape)
    rows = np.moveaxis(x, axis, -1)  # (..., n)
    keep = np.moveaxis(keep, axis, -1)  # (..., n)
    result = np.empty(rows.shape, dtype=object)
    with mpmath.workdps(dps):
        for index in np.ndindex(rows.shape[:-1]):
            row = _softmax_row([mpmath.mpf(float(v)) for v in rows[index]], keep[index])
            result[index] = [mpmath.mpf(0)] * rows.shape[-1] if row is None else row
    return _finish(np.moveaxis(result, -1, axis), as_mpf)


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
    d_v = c.weights["w_v"].shape[1] // h
    if d_k == 0:
        raise ValueError(f"w_q: the head width d_k = w_q.shape[1] / num_heads is 0 (w_q shape "
                         f"{c.weights['w_q'].shape}); 1/sqrt(d_k) is undefined")
    masks = combine_masks(c.attn_mask, is_causal, (B, h, L, S))
    keep = np.broadcast_to(masks.keep, (B, h, L, S))
    additive = None if masks.additive is None else np.broadcast_to(masks.additive, (B, h, L, S))
    output = np.empty((B, L, d_model), dtype=object)
    with mpmath.workdps(dps):
        x_q_mp, x_kv_mp = _to_mpf(c.x_q), _to_mpf(c.x_kv)
        weights = {name: _to_mpf(w) for name, w in c.weights.items()}
        biases = {name: _to_mpf(b) for name, b in c.biases.items()}
        scale = 1 / mpmath.sqrt(d_k)  # clause mha.head: the per-head d_k
        for b in range(B):
            query = _affine(x_q_mp[b], weights["w_q"], biases.get("b_q"))  # (L, h*d_k)
            key = _affine(x_kv_mp[b], weights["w_k"], biases.get("b_k"))  # (S, h*d_k)
            value = _affine(x_kv_mp[b], weights["w_v"], biases.get("b_v"))  # (S, h*d_v)
            heads = []
            for i in range(h):  # clause mha.split: columns i*d:(i+1)*d
                _, head = _attention_2d(query[:, i * d_k:(i + 1) * d_k], key[:, i * d_k:(i + 1) * d_k],
                                        value[:, i * d_v:(i + 1) * d_v], keep[b, i],
                                        None if additive is None else _to_mpf(additive[b, i]), scale, "zeros")
                heads.append(head)  # (L, d_v)
            concat = np.concatenate(heads, axis=1) if heads else np.empty((L, 0), dtype=object)  # (L, h*d_v)
            output[b] = _affine(concat, weights["w_o"], biases.get("b_o"))  # (L, d_model)
    return _finish(output[0] if c.unbatched else output, as_mpf)


def _affine(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x weight + bias`` on mpf arrays, each element one correctly rounded :func:`mpmath.fdot`."""
    rows, cols = x.shape[0], weight.shape[1]
    out = np.empty((rows, cols), dtype=object)
    for r in range(rows):
        for col in range(cols):
            terms = list(x[r]) + ([] if bias is None else [bias[col]])
            factors = list(weight[:, col]) + ([] if bias is None else [mpmath.mpf(1)])
            out[r, col] = mpmath.fdot(terms, factors)
    return out
