"""The tolerance model: the error an implementation may make, from a forward-error analysis.

Clause ``attention.accuracy``. No fixed ``atol``: the inputs are already rounded to the dtype
under test, the float64 reference computes on exactly those values, and the allowed error of each
output element follows from the formula, the sizes and the data (docs/error-model.md derives it).

Two unit roundoffs describe an implementation: ``u_s`` of the storage dtype (its inputs, outputs
and any intermediate it stores: scaled inputs, scores, weights) and ``u_a`` of its accumulation
(sums, dot products, the running max and sum of an online softmax). For float16 and bfloat16,
``u_a`` is float32's unless the backend declares ``accumulation="dtype"``; for float32 and
float64 both are the dtype's. ``eta_s`` is half the subnormal spacing of the storage dtype.

For one query row i with kept keys j (``A_ij = |s| sum_e |q_ie||k_je|``, scores
``x_ij = s q_i.k_j + M_ij``, row max ``m_i``), every exponent a kernel feeds to ``exp`` is off by at most
``D_i``; each weight is then off by a factor within ``exp(+-2 D_i)``; the sums (with up to one
online-softmax rescaling per key), the exponentials and the stored weights add
``c = 4 u_s + (4 S + 4) u_a``, and the bound of output element ``(i, c)`` is ``B_ic``::

    D_i = max_j [ (E + 2) u_a A_ij + 6 u_s (A_ij + |M_ij|) + 3 u_s |x_ij - m_i| ]
    B_ic = expm1(2 D_i + c) sum_j P_ij |V_jc| + u_s |O_ic| + 2 eta_s (sum_j |V_jc| + S + 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kqv.reference.mha import concat_heads, split_heads
from kqv.reference.prepare import Prepared, prepare
from kqv.reference.sdpa import attend
from kqv.reference.stages import scores

from .cases import MhaInputs, SdpaInputs
from .dtypes import UNDERFLOW, UNIT_ROUNDOFF, as_float64



@dataclass(frozen=True)
class Precision:
    """The unit roundoffs of an implementation computing in ``dtype`` (see the module docstring)."""

    dtype: str
    storage: float  # u_s
    accumulation: float  # u_a
    underflow: float  # eta_s

    @classmethod
    def of(cls, dtype: str, accumulation: str = "float32") -> "Precision":
        storage = UNIT_ROUNDOFF[dtype]
        wide = storage if accumulation == "dtype" else min(storage, UNIT_ROUNDOFF["float32"])
        return cls(dtype, storage, wide, UNDERFLOW[dtype])


@dataclass(frozen=True)
class Expectation:
    """The reference result on the rounded inputs and the allowed error of each element.

    ``expected`` is NaN where the spec asks for NaN (a fully masked row under the ``nan``
    convention); ``empty`` marks the query rows that keep no key, ``(..., L)``.
    """

    expected: np.ndarray
    bound: np.ndarray
    weights: np.ndarray | None = None
    empty: np.ndarray | None = None
    keep: np.ndarray | None = None  # (..., L, S): the keys each query row keeps
    value: np.ndarray | None = None  # (..., S, Ev): the values each query row reads (heads mapped)


def _masked_rows_output(value: np.ndarray, empty: np.ndarray, masked_rows: str,
                        precision: Precision) -> tuple[np.ndarray, np.ndarray]:
    """Output and bound of the rows that keep no key (clause ``mask.fully-masked-row``), ``(..., L, Ev)``."""
    S = value.shape[-2]
    shape = np.broadcast_shapes(empty.shape + (1,), value.shape[:-2] + (1, value.shape[-1]))
    if masked_rows == "nan":
        return np.full(shape, np.nan), np.zeros(shape)
    if masked_rows == "zeros" or S == 0:
        return np.zeros(shape), np.zeros(shape)
    mean = np.broadcast_to(value.mean(axis=-2, keepdims=True), shape)  # (..., 1, Ev) -> (..., L, Ev)
    magnitude = np.broadcast_to(np.abs(value).mean(axis=-2, keepdims=True), shape)
    total = np.broadcast_to(np.abs(value).sum(axis=-2, keepdims=True), shape)
    bound = np.expm1((S + 2) * precision.accumulation + precision.storage) * magnitude \
        + precision.storage * np.abs(mean) + 2 * precision.underflow * (total + S + 1)
    return mean, bound


def _row_exponent_error(A, x, M, keep, d_k, precision, extra=None):
    """``D_i`` of the module docstring, ``(..., L)``; ``extra`` adds a per-score error (mha: from the projections)."""
    u_s, u_a = precision.storage, precision.accumulation
    row_max = np.max(np.where(keep, x, -np.inf), axis=-1, keepdims=True, initial=-np.inf)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    per_score = (d_k + 2) * u_a * A + 6 * u_s * (A + np.abs(M)) + 3 * u_s * np.abs(x - row_max)
    if extra is not None:
        per_score = per_score + extra
    return np.max(np.where(keep, per_score, 0.0), axis=-1, initial=0.0)


def sdpa_bound(query: np.ndarray, key: np.ndarray, value: np.ndarray, weights: np.ndarray, keep: np.ndarray,
               additive: np.ndarray, scale: float, precision: Precision) -> np.ndarray:
    """``B_ic`` of the module docstring, ``(..., L, Ev)``, from float64 arrays.

    ``weights`` are the reference weights ``P (..., L, S)``, ``keep`` the kept keys and ``additive``
    the finite additive mask at kept keys (zeros where there is none), both ``(..., L, S)``; key and
    value have the query's heads. The scores and their magnitudes ``A = |s| |Q| |K|^T`` come from
    the scores stage of :mod:`kqv.reference.stages`.
    """
    E, S = query.shape[-1], key.shape[-2]
    x = scores(query, key, scale) + additive  # (..., L, S): s Q K^T + M
    A = scores(np.abs(query), np.abs(key), abs(scale))  # (..., L, S): |s| |Q| |K|^T
    exponent = _row_exponent_error(A, x, additive, keep, E, precision)  # (..., L)
    extra = 4 * precision.storage + (4 * S + 4) * precision.accumulation
    mass = weights @ np.abs(value)  # (..., L, Ev): sum_j P_ij |V_jc|
    kept_total = keep.astype(np.float64) @ np.abs(value)  # (..., L, Ev): sum over kept j of |V_jc|
    return np.expm1(2 * exponent + extra)[..., None] * mass + precision.storage * np.abs(weights @ value) \
        + 2 * precision.underflow * (kept_total + S + 1)


def call_bound(call: Prepared, weights: np.ndarray, precision: Precision) -> np.ndarray:
    """:func:`sdpa_bound` of a float64 :class:`~kqv.reference.prepare.Prepared` call, ``(*batch, L, Ev)``: the
    kept keys, the biases at them and the head mapping are those the reference's stages use."""
    return sdpa_bound(call.query, call.key, call.value, weights, call.kept(), call.biases(), call.scale, precision)


def sdpa_expectation(inputs: SdpaInputs, precision: Precision, alignment: str = "top-left",
                     masked_rows: str = "zeros") -> Expectation:
    """Reference output and bound ``B_ic`` of one ``sdpa`` call (clause ``attention.accuracy``).

    Rows that keep no key follow ``masked_rows`` (clause ``mask.fully-masked-row``): exactly 0,
    NaN, or the mean of the values within the error of an ``S``-term mean.
    """
    mask = None if inputs.attn_mask is None else (inputs.attn_mask if inputs.attn_mask.dtype == np.bool_
                                                  else as_float64(inputs.attn_mask))
    call = prepare(*(as_float64(a) for a in (inputs.query, inputs.key, inputs.value)), mask, inputs.is_causal,
                   inputs.scale, causal_alignment=alignment, **dict(inputs.keywords))
    weights, _, expected = attend(call)  # (*batch, L, S), (*batch, L, Ev): zeros on empty rows
    bound = call_bound(call, weights, precision)
    keep = call.kept()
    empty = ~np.any(keep, axis=-1)  # (*batch, L)
    value = np.broadcast_to(call.value, call.batch + call.value.shape[-2:])  # (*batch, S, Ev), heads mapped
    if np.any(empty):
        row_out, row_bound = _masked_rows_output(value, empty, masked_rows, precision)
        expected = np.where(empty[..., None], row_out, expected)
        bound = np.where(empty[..., None], row_bound, bound)
    return Expectation(expected, bound, weights, empty, keep, value)


def _projection(x, w, b, precision):
    """``(y, err)`` of ``y = x w + b`` (clauses ``projection.*``, ``mha.output-projection``)."""
    y = x @ w if b is None else x @ w + b
    magnitude = np.abs(x) @ np.abs(w) + (0.0 if b is None else np.abs(b))
    err = np.expm1((x.shape[-1] + 2) * precision.accumulation) * magnitude + precision.storage * np.abs(y) \
        + 2 * precision.underflow * (x.shape[-1] + 1)
    return y, err


def mha_expectation(inputs: MhaInputs, precision: Precision, masked_rows: str = "zeros",
                    alignment: str = "top-left") -> Expectation:
    """Reference output and bound of one ``mha`` call, the sdpa model carried through the projections.

    Each projection ``x W + b`` is off by ``expm1((n + 2) u_a) (|x||W| + |b|) + u_s |y|``; a head's
    scores then carry ``|s| (e_Q |K|^T + |Q| e_K^T + e_Q e_K^T)`` more error (added to ``D_i``) and
    its output ``exp(2 D_i + c) P e_V`` more; the output projection carries the heads' error
    through ``|W_O|``.
    """
    f64 = {name: (None if a is None else as_float64(a)) for name, a in vars(inputs).items()
           if isinstance(a, np.ndarray) or a is None}
    h = inputs.num_heads
    query, e_query = _projection(f64["x_q"], f64["w_q"], f64["b_q"], precision)  # (B, L, h*d_k)
    key, e_key = _projection(f64["x_kv"], f64["w_k"], f64["b_k"], precision)  # (B, S, h*d_k)
    value, e_value = _projection(f64["x_kv"], f64["w_v"], f64["b_v"], precision)  # (B, S, h*d_v)
    query, e_query, key, e_key, value, e_value = (split_heads(a, h) for a in
                                                  (query, e_query, key, e_key, value, e_value))  # (B, h, n, d)
    B, _, L, d_k = query.shape
    S = key.shape[-2]
    mask = f64["attn_mask"] if inputs.attn_mask is None or inputs.attn_mask.dtype != np.bool_ else inputs.attn_mask
    mask = None if mask is None else mask[:, None]  # (B or 1, 1, L, S): the same for every head
    call = prepare(query, key, value, mask, inputs.is_causal, causal_alignment=alignment, masked_rows=masked_rows)
    scale = call.scale  # clause mha.head: the per-head d_k
    keep = call.kept()  # (B, h, L, S)
    additive = call.biases()  # (B, h, L, S)
    weights, _, heads = attend(call)  # (B, h, L, S) zeros on empty rows, (B, h, L, d_v) by the convention
    x = scores(query, key, scale) + additive  # (B, h, L, S)
    A = scores(np.abs(query), np.abs(key), scale)  # (B, h, L, S): |s| |Q| |K|^T
    key_t = np.swapaxes
    inherited = scale * (e_query @ key_t(np.abs(key), -1, -2) + np.abs(query) @ key_t(e_key, -1, -2)
                         + e_query @ key_t(e_key, -1, -2))  # (B, h, L, S)
    exponent = _row_exponent_error(A, x, additive, keep, d_k, precision, extra=inherited)  # (B, h, L)
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
    concat = concat_heads(heads)  # (B, L, h*d_v)
    e_concat = concat_heads(e_heads)  # (B, L, h*d_v)
    output, e_output = _projection(concat, f64["w_o"], f64["b_o"], precision)  # (B, L, d_model)
    e_output = e_output + np.nan_to_num(e_concat) @ np.abs(f64["w_o"])
    return Expectation(output, np.nan_to_num(e_output, nan=0.0), weights, empty[:, 0], keep[:, 0])


def pe_bound(length: int, d_model: int, precision: Precision, base: float = 10000.0) -> np.ndarray:
    """Allowed error of each PE element, ``(length, d_model)`` (clauses ``pe.sinusoid``, ``pe.odd-d-model``).

    The frequency ``w_i = base^(-x)``, ``x = 2i/d_model``, computed by ``exp`` or ``pow`` of a rounded
    ``x ln(base)`` is off by ``(3 + 3 x ln(base)) u_a`` relatively; rounding ``pos`` and the product
    ``pos w_i`` add ``2 u_a``, so the angle is off by ``(5 + 3 x ln(base)) u_a |angle|``; ``sin`` and
    ``cos`` are 1-Lipschitz and add ``2 u_a`` of their own; storing the result adds ``u_s + eta_s``.
    """
    column = np.arange(d_model)
    exponent = (column - column % 2) / d_model  # x = 2i/d_model for both columns of pair i
    angle = np.arange(length, dtype=np.float64)[:, None] * np.power(base, -exponent)[None, :]  # (length, d_model)
    u_a = precision.accumulation
    return (5 + 3 * exponent * abs(np.log(base))) * u_a * np.abs(angle) + 2 * u_a + precision.storage \
        + precision.underflow
