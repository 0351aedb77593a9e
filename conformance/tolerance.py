"""The tolerance model: the error an implementation may make, from a forward-error analysis.

This module holds what every kind's bound is built from (the precision of an implementation, the
expectation a check judges against, the error of the exponents of one softmax row, of one
projection); each kind's own bound is in ``kqv.conformance.kinds.<kind>.bound``.

Clause ``attention.accuracy``. No fixed ``atol``: the inputs are already rounded to the dtype
under test, the float64 reference computes on exactly those values, and the allowed error of each
output element follows from the formula, the sizes and the data (docs/error-model.md derives it).

Two unit roundoffs describe an implementation: ``u_s`` of the storage dtype (its inputs, outputs
and any intermediate it stores: scaled inputs, scores, weights) and ``u_a`` of its accumulation
(sums, dot products, the running max and sum of an online softmax). For float16 and bfloat16,
``u_a`` is float32's unless the backend declares ``accumulation="dtype"``; for float32 and
float64 both are the dtype's. ``eta_s`` is the absolute error of one result lost to underflow: half
the subnormal spacing of the storage dtype, or the smallest normal number of the accumulation
precision where that is larger, since a kernel may flush results below it to zero (XLA on the CPU
does, in float32 and float64; so does CUDA code built with ``-ftz``).

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

from .dtypes import SMALLEST_NORMAL, UNDERFLOW, UNIT_ROUNDOFF

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
        summed = dtype if accumulation == "dtype" or storage < UNIT_ROUNDOFF["float32"] else "float32"
        return cls(dtype, storage, UNIT_ROUNDOFF[summed], max(UNDERFLOW[dtype], SMALLEST_NORMAL[summed]))


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


def row_exponent_error(A, x, M, keep, d_k, precision, extra=None, sink=None):
    """``D_i`` of the module docstring, ``(..., L)``; ``extra`` adds a per-score error (mha: from the projections);
    ``sink``, one logit per row (broadcastable to ``(..., L, 1)``, clause ``sinks.formula``), joins the row max."""
    u_s, u_a = precision.storage, precision.accumulation
    row_max = np.max(np.where(keep, x, -np.inf), axis=-1, keepdims=True, initial=-np.inf)
    if sink is not None:
        row_max = np.maximum(row_max, sink)  # (..., L, 1): the kernel shifts by the max over the row and the sink
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    per_score = (d_k + 2) * u_a * A + 6 * u_s * (A + np.abs(M)) + 3 * u_s * np.abs(x - row_max)
    if extra is not None:
        per_score = per_score + extra
    return np.max(np.where(keep, per_score, 0.0), axis=-1, initial=0.0)


def projection(x, w, b, precision):
    """``(y, err)`` of ``y = x w + b`` (clauses ``projection.*``, ``mha.output-projection``)."""
    y = x @ w if b is None else x @ w + b
    magnitude = np.abs(x) @ np.abs(w) + (0.0 if b is None else np.abs(b))
    err = np.expm1((x.shape[-1] + 2) * precision.accumulation) * magnitude + precision.storage * np.abs(y) \
        + 2 * precision.underflow * (x.shape[-1] + 1)
    return y, err
