"""The bound of an ``sdpa`` call (clause ``attention.accuracy``): the tolerance model of
:mod:`kqv.conformance.tolerance` on the stages of the reference.

The scores, their magnitudes ``A = |s| |Q| |K|^T``, the kept keys, the biases at them and the head
mapping all come from :mod:`kqv.reference.stages` through a :class:`~kqv.reference.prepare.Prepared`
call, so the bound sees exactly the keys the reference uses; docs/error-model.md derives it.
"""

from __future__ import annotations

import numpy as np

from kqv.reference.prepare import Prepared, prepare
from kqv.reference.sdpa import attend, attend_with_lse
from kqv.reference.stages import scores, soft_cap

from ...dtypes import UNIT_ROUNDOFF, as_float64
from ...tolerance import Expectation, Precision, row_exponent_error
from .case import SdpaInputs


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


def sdpa_bound(query: np.ndarray, key: np.ndarray, value: np.ndarray, weights: np.ndarray, keep: np.ndarray,
               additive: np.ndarray, scale: float, precision: Precision, softcap: float | None = None,
               sink: np.ndarray | None = None) -> np.ndarray:
    """``B_ic`` of the module docstring, ``(..., L, Ev)``, from float64 arrays.

    ``weights`` are the reference weights ``P (..., L, S)``, ``keep`` the kept keys and ``additive``
    the finite additive terms at kept keys, the float mask plus the ALiBi bias (clause
    ``alibi.float-mask``; zeros where there are none), both ``(..., L, S)``; key and
    value have the query's heads. The scores and their magnitudes ``A = |s| |Q| |K|^T`` come from
    the scores stage of :mod:`kqv.reference.stages`. With a cap ``c`` (clause ``softcap.formula``) the
    score is ``c tanh(y / c)``: its slope is at most 1, so the error of ``y`` passes through no larger,
    and computing it (``y / c``, ``tanh``, the product by ``c``) in the storage precision adds ``3 u_s |x|``.
    With a sink per row (``sink``, broadcastable to ``(..., L, 1)``, clause ``sinks.formula``) the row max
    ``m_i`` is over the kept scores and the sink, and the denominator has one more term
    ``exp(sink_h - m_i)``: it has no numerator, and as the largest term of the denominator is exactly 1,
    rounding its exponent moves the denominator by at most ``3 u_s t e^(-t) <= 2 u_s`` relatively
    (``t = m_i - sink_h``); with one more term and one more online rescaling it adds ``2 u_s + 4 u_a``.
    """
    exponent = exponent_error(query, key, keep, additive, scale, precision, softcap, sink)  # (..., L)
    terms = key.shape[-2] if sink is None else key.shape[-2] + 1  # the sink is one more term of the sum
    return weighted_bound(exponent, weights, value, keep, precision, terms, 4 if sink is None else 6)


def weighted_bound(exponent: np.ndarray, weights: np.ndarray, value: np.ndarray, keep: np.ndarray,
                   precision: Precision, terms: int, stored: int = 4) -> np.ndarray:
    """``B_ic``, ``(..., L, Ev)``, from the exponent error ``D_i`` of each row, ``(..., L)``: the weights
    ``P (..., L, S)`` off by a factor within ``exp(+-2 D_i)`` and ``c = stored u_s + (4 terms + 4) u_a`` more
    (``terms`` summed in the denominator), the output rounded, and ``2 eta_s`` per kept value and term for
    underflow."""
    S = value.shape[-2]
    extra = stored * precision.storage + (4 * terms + 4) * precision.accumulation
    mass = weights @ np.abs(value)  # (..., L, Ev): sum_j P_ij |V_jc|
    kept_total = keep.astype(np.float64) @ np.abs(value)  # (..., L, Ev): sum over kept j of |V_jc|
    with np.errstate(over="ignore"):
        growth = np.expm1(2 * exponent + extra)[..., None]  # (..., L, 1): inf where the exponents may be off by > 709
    # A row whose every weight underflows (a sink far above its scores) has mass 0: nothing to grow, not inf * 0.
    spread = np.where(mass == 0, 0.0, growth * np.where(mass == 0, 1.0, mass))
    return spread + precision.storage * np.abs(weights @ value) + 2 * precision.underflow * (kept_total + S + 1)


def exponent_error(query: np.ndarray, key: np.ndarray, keep: np.ndarray, additive: np.ndarray, scale: float,
                   precision: Precision, softcap: float | None = None, sink: np.ndarray | None = None) -> np.ndarray:
    """``D_i``, ``(..., L)``: the most any exponent ``x_ij - m_i`` of row ``i`` a kernel feeds to ``exp`` is off by
    (:func:`~kqv.conformance.tolerance.row_exponent_error`), the cap's own rounding included, ``m_i`` over the
    sink too; arguments as :func:`sdpa_bound` takes them."""
    x = soft_cap(scores(query, key, scale), softcap) + additive  # (..., L, S): c tanh(s Q K^T / c) + M
    A = scores(np.abs(query), np.abs(key), abs(scale))  # (..., L, S): |s| |Q| |K|^T
    extra = None if softcap is None else 3 * precision.storage * np.abs(x - additive)
    return row_exponent_error(A, x, additive, keep, query.shape[-1], precision, extra, sink)


def lse_bound(call: Prepared, lse: np.ndarray, precision: Precision, returned: str) -> np.ndarray:
    """The bound of the lse of each row (clause ``lse.definition``), ``(*batch, L)``, for an lse returned in the dtype
    ``returned``; ``lse`` is the reference's, ``(*batch, L)``, ``-inf`` on rows that keep no key (bound 0 there).

    The lse is 1-Lipschitz in the scores (its gradient is the row's weights, which sum to 1), so exponents off by
    at most ``D_i`` move it by at most ``D_i``. The sum ``l`` of the ``n_i <= S`` terms ``exp(x_ij - m_i)`` (with up
    to one online rescaling per key) is off by a relative ``g = expm1((3 S + 4) u_a) + 2 (S + 1) eta_s`` (``l >= 1``:
    its largest term is ``exp(0)``), so ``log l`` by at most ``-log(1 - g)``; ``log l`` and ``m + log l`` round in
    the accumulation, ``u_a (|lse_i| + log n_i)``; the result rounds to ``returned``, ``u_r |lse_i|``::

        B_i = D_i - log(1 - g) + u_a (|lse_i| + log n_i) + u_r |lse_i|

    With a sink (clause ``sinks.formula``) the sum has one more term ``exp(sink_h - m_i)``, ``m_i`` over the sink
    too, whose exponent rounds in the storage precision (``2 u_s`` more in ``g``, as in :func:`sdpa_bound`); a row
    that keeps no key then has the finite lse ``sink_h``.
    """
    keep = call.kept()
    sink = call.row_sinks()
    terms = call.S if sink is None else call.S + 1  # the sink is one more term of the sum
    exponent = exponent_error(call.query, call.key, keep, call.biases(), call.scale, precision, call.softcap, sink)
    u_a = precision.accumulation
    g = np.expm1((3 * terms + 4) * u_a + (0 if sink is None else 2 * precision.storage)) \
        + 2 * (terms + 1) * precision.underflow
    sum_error = -np.log1p(-g) if g < 1 else np.inf
    kept = np.maximum(keep.sum(axis=-1) + (sink is not None), 1)  # (*batch, L): n_i
    magnitude = np.where(np.isfinite(lse), np.abs(lse), 0.0)
    bound = exponent + sum_error + u_a * (magnitude + np.log(kept)) + UNIT_ROUNDOFF[returned] * magnitude
    return np.where(np.isfinite(lse), bound, 0.0)


def call_bound(call: Prepared, weights: np.ndarray, precision: Precision) -> np.ndarray:
    """:func:`sdpa_bound` of a float64 :class:`~kqv.reference.prepare.Prepared` call, ``(*batch, L, Ev)``: the
    kept keys, the biases at them and the head mapping are those the reference's stages use."""
    return sdpa_bound(call.query, call.key, call.value, weights, call.kept(), call.biases(), call.scale, precision,
                      call.softcap, call.row_sinks())


def prepared(inputs: SdpaInputs, alignment: str = "top-left", masked_rows: str = "zeros") -> Prepared:
    """The float64 :class:`~kqv.reference.prepare.Prepared` call of ``inputs`` (the rounded inputs, exactly)."""
    return prepared_call(inputs.query, inputs.key, inputs.value, inputs.attn_mask, inputs.is_causal, inputs.scale,
                         inputs.keywords, alignment, masked_rows)


def prepared_call(query: np.ndarray, key: np.ndarray, value: np.ndarray, attn_mask: np.ndarray | None = None,
                  is_causal: bool = False, scale: float | None = None, keywords: dict | None = None,
                  alignment: str = "top-left", masked_rows: str = "zeros") -> Prepared:
    """The float64 :class:`~kqv.reference.prepare.Prepared` call of one ``sdpa`` call as a backend receives it (the
    arrays in any floating dtype, bfloat16 included; ``keywords`` those of the variants that change what it
    computes)."""
    mask = None if attn_mask is None else (attn_mask if attn_mask.dtype == np.bool_ else as_float64(attn_mask))
    return prepare(*(as_float64(a) for a in (query, key, value)), mask, is_causal, scale, causal_alignment=alignment,
                   masked_rows=masked_rows, **(keywords or {}))


def lse_expectation(inputs: SdpaInputs, precision: Precision, returned: str,
                    alignment: str = "top-left") -> tuple[np.ndarray, np.ndarray]:
    """The reference lse ``(*batch, L)`` (``-inf`` on rows that keep no key) and its :func:`lse_bound` for an lse
    returned in the dtype ``returned`` (clauses ``lse.definition``, ``lse.empty-row``)."""
    return call_lse_expectation(prepared(inputs, alignment), precision, returned)


def call_lse_expectation(call: Prepared, precision: Precision, returned: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lse_expectation` of a :class:`~kqv.reference.prepare.Prepared` call."""
    lse = attend_with_lse(call)[3]
    return lse, lse_bound(call, lse, precision, returned)


def sdpa_expectation(inputs: SdpaInputs, precision: Precision, alignment: str = "top-left",
                     masked_rows: str = "zeros") -> Expectation:
    """Reference output and bound ``B_ic`` of one ``sdpa`` call (clause ``attention.accuracy``).

    Rows that keep no key follow ``masked_rows`` (clause ``mask.fully-masked-row``): exactly 0,
    NaN, or the mean of the values within the error of an ``S``-term mean. With sinks they are
    exactly 0 whatever ``masked_rows`` (clause ``sinks.empty-row``: the call's convention is zeros).
    """
    return call_expectation(prepared(inputs, alignment, masked_rows), precision)


def call_expectation(call: Prepared, precision: Precision) -> Expectation:
    """:func:`sdpa_expectation` of a :class:`~kqv.reference.prepare.Prepared` call (its ``masked_rows`` included)."""
    weights, _, expected = attend(call)  # (*batch, L, S), (*batch, L, Ev): zeros on empty rows
    bound = call_bound(call, weights, precision)
    keep = call.kept()
    empty = ~np.any(keep, axis=-1)  # (*batch, L)
    value = np.broadcast_to(call.value, call.batch + call.value.shape[-2:])  # (*batch, S, Ev), heads mapped
    if np.any(empty):
        row_out, row_bound = _masked_rows_output(value, empty, call.masked_rows, precision)
        expected = np.where(empty[..., None], row_out, expected)
        bound = np.where(empty[..., None], row_bound, bound)
    return Expectation(expected, bound, weights, empty, keep, value)
