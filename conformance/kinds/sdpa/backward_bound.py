"""The bound of the gradients of an ``sdpa`` call (clause ``gradient.accuracy``): the forward-error analysis of the
backward pass, in the two-precision model of :mod:`kqv.conformance.tolerance`; docs/error-model.md derives it.

For query row ``i`` and kept key ``j`` of the call (heads mapped, batch broadcast), with the exact weights ``P``,
``W_ij = sum_c |dO_ic| |V_jc|`` (which bounds ``|dP_ij|``) and ``Y_i = sum_j P_ij W_ij`` (which bounds ``|D_i|``)::

    lambda_i = 2 D_i + 6 u_s + (4 S + 4) u_a + 2 u_s (|lse_i| + log n_i)    the log-error of a weight P_ij
    eps_i    = expm1(lambda_i)                                         |P^_ij - P_ij| <= eps_i P_ij + omega
    dP:  |dP^ - dP|  <= (expm1((Ev + 2) u_a) + u_s) W_ij
    D:   |D^ - D|    <= kappa_i Y_i + U_i,   kappa_i = expm1(lambda_i + (Ev + S + 4) u_a + 3 u_s)
    dA:  |dA^ - dA|  <= P_ij (alpha_i W_ij + beta_i Y_i + U_i) + omega (W_ij + Y_i) + eta_s = F_ij
         alpha_i = expm1(lambda_i + (Ev + 2) u_a + 4 u_s),  beta_i = eps_i + (1 + eps_i) kappa_i + 3 u_s
    dV = P^T dO:    B_jc = sum_i [expm1(lambda_i + (N_V + 2) u_a) P_ij + omega] |dO_ic|
                           + u_s |dV_jc| + 2 eta_s (N_V + 1)
    dQ = s dA K:    B_ie = |s| sum_j F_ij |K_je| + g_S |s| sum_j Z_ij |K_je| + u_s |dQ_ie| + 2 eta_s (S + 1)
    dK = s dA^T Q:  B_je = |s| sum_i F_ij |Q_ie| + g_N |s| sum_i Z_ij |Q_ie| + u_s |dK_je| + 2 eta_s (N_K + 1)

with ``Z_ij = P_ij (W_ij + Y_i)`` (which bounds ``|dA_ij|``), ``g_n = expm1((n + 2) u_a) + 3 u_s`` (the sum of
``n`` terms; the scale, its product and a pre-scaled operand rounded in the storage precision), ``D_i`` the
forward's exponent error (:func:`~kqv.conformance.kinds.sdpa.bound.exponent_error`), ``U_i`` the underflow of
``D`` and ``omega`` that of a weight. ``N_V`` and ``N_K`` count the rows summed into one key or value row: ``L``
times the query heads of a group (clause ``gqa.head-mapping``) and the batch entries it was broadcast along.
Under a soft cap ``c`` (clause ``softcap.formula``) ``dA`` is multiplied by the slope ``t = 1 - tanh^2(y / c)``,
whose error is ``2 t |dz| + 4 u_s``: ``F`` becomes ``t F + Z (2 t |dz| + 4 u_s)`` and ``Z`` becomes ``t Z``. With a
sink (clause ``sinks.formula``) the denominator has one more term: ``S + 1`` terms and ``2 u_s + 4 u_a`` more in
``lambda_i``. A row that keeps no key has ``dA_i = 0`` exactly (clause ``gradient.masked-row``); under ``uniform``
its ``dO_i / S`` reaches every value row with the error of an ``N_V``-term sum.
"""

from __future__ import annotations

import numpy as np

from kqv.reference.backward import backward
from kqv.reference.backward_stages import Gradients, fold_heads, input_gradients, reduce_to
from kqv.reference.prepare import Prepared
from kqv.reference.sdpa import masked_scores
from kqv.reference.stages import scores, softmax_with_lse

from ...tolerance import Precision
from .bound import exponent_error


def _transposed(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)  # (..., n, m) -> (..., m, n)


def weight_flush(precision: Precision) -> float:
    """``omega``: the absolute error of one weight lost to underflow, ``2 eta_s``. ``eta_s`` covers a kernel that
    flushes results below the smallest normal number of its accumulation precision to 0 (XLA on the CPU does;
    torch's vectorised ``exp`` gives 0 below ``2^-125``, one binade above float32's, hence the 2)."""
    return 2 * precision.underflow


def weight_errors(call: Prepared, precision: Precision,
                  extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P, keep, lambda)``: the exact weights ``(*batch, L, S)``, the kept keys and the log-error of a weight
    ``lambda_i``, ``(*batch, L, 1)``, of the module docstring; ``extra`` ``(*batch, L)`` adds to each row's ``D_i``
    (mha: the error its scores inherit from the projections)."""
    u_s, u_a = precision.storage, precision.accumulation
    keep = call.kept()
    sink = call.row_sinks()
    weights, _, lse = softmax_with_lse(masked_scores(call), sink=sink)  # (*batch, L, S), lse (*batch, L, 1)
    terms = call.S + (sink is not None)
    exponent = exponent_error(call.query, call.key, keep, call.biases(), call.scale, precision, call.softcap, sink)
    if extra is not None:
        exponent = exponent + extra
    kept = np.maximum(keep.sum(axis=-1, keepdims=True) + (sink is not None), 1)  # (*batch, L, 1): n_i
    magnitude = np.where(np.isfinite(lse), np.abs(lse), 0.0)
    log_error = 2 * exponent[..., None] + 6 * u_s + (4 * terms + 4) * u_a + 2 * u_s * (magnitude + np.log(kept))
    if sink is not None:
        log_error = log_error + 2 * u_s + 4 * u_a  # the sink's own term of the denominator
    return weights, keep, log_error


def _cap_slope(call: Prepared, precision: Precision) -> tuple[np.ndarray, np.ndarray] | None:
    """``(t, error of t)`` under a soft cap, ``(*batch, L, S)`` each, or None: ``t = 1 - tanh^2(z)``, ``z = y / c``
    and ``y = s q.k`` off by ``((E + 2) u_a + 3 u_s) |s| |q|.|k|``, so ``t`` by ``2 t |dz| + 4 u_s``."""
    if call.softcap is None:
        return None
    u_s, u_a = precision.storage, precision.accumulation
    raw = scores(call.query, call.key, call.scale)  # (..., L, S): y
    magnitude = scores(np.abs(call.query), np.abs(call.key), abs(call.scale))  # (..., L, S): |s| |Q| |K|^T
    z = raw / call.softcap
    slope = 1 - np.tanh(z) ** 2
    dz = ((call.E + 2) * u_a + 3 * u_s) * magnitude / call.softcap + u_s * np.abs(z)
    return slope, 2 * slope * dz + 4 * u_s


def _score_errors(call: Prepared, grad_output: np.ndarray, weights: np.ndarray, keep: np.ndarray,
                  log_error: np.ndarray, precision: Precision) -> tuple[np.ndarray, np.ndarray]:
    """``(F, Z)``, ``(*batch, L, S)`` each: the bound of the error of ``dA`` and of ``|dA|`` (module docstring)."""
    u_s, u_a, eta = precision.storage, precision.accumulation, precision.underflow
    omega = weight_flush(precision)
    S, Ev = call.S, call.Ev
    value = np.abs(call.value)  # (..., S, Ev)
    dO = np.abs(grad_output)  # (*batch, L, Ev)
    W = dO @ _transposed(value)  # (*batch, L, S): sum_c |dO_ic| |V_jc|, bounds |dP_ij|
    Y = np.sum(weights * W, axis=-1, keepdims=True)  # (*batch, L, 1): bounds |D_i|
    U = omega * np.sum(np.where(keep, W, 0.0), axis=-1, keepdims=True) \
        + 2 * eta * (dO @ (np.sum(value, axis=-2, keepdims=True) + S + 1).swapaxes(-1, -2))  # (*batch, L, 1)
    eps = np.expm1(log_error)  # (*batch, L, 1)
    kappa = np.expm1(log_error + (Ev + S + 4) * u_a + 3 * u_s)
    alpha = np.expm1(log_error + (Ev + 2) * u_a + 4 * u_s)
    beta = eps + (1 + eps) * kappa + 3 * u_s
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 where a row's exponents may be off by > 709
        F = np.where(keep, weights * (alpha * W + beta * Y + U) + omega * (W + Y) + eta, 0.0)
        Z = np.where(keep, weights * (W + Y), 0.0)
    capped = _cap_slope(call, precision)
    if capped is not None:
        slope, slope_error = capped
        F, Z = slope * F + Z * slope_error, slope * Z
    return np.nan_to_num(F, nan=np.inf), Z


def _copies(batch: tuple[int, ...], given: tuple[int, ...]) -> int:
    """How many entries of the call's batch ``batch`` map onto one entry of an input whose batch dims are ``given``
    (broadcast and, with grouped heads, the query heads of a group)."""
    return int(np.prod(batch, dtype=np.int64)) // max(1, int(np.prod(given, dtype=np.int64)))


def _to_input(call: Prepared, gradient: np.ndarray, shape: tuple[int, ...], mapped: tuple[int, ...]) -> np.ndarray:
    """A bound of the call's broadcast arrays summed back onto the input's ``shape`` (``mapped`` the shape of its
    heads mapped to the query's), as :func:`~kqv.reference.backward_stages.input_gradients` sums the gradient."""
    reduced = reduce_to(gradient, mapped)
    if tuple(mapped) != tuple(shape):
        reduced = fold_heads(reduced, shape[-3])  # (..., H_kv, n, d): the query heads of each group summed
    return reduced


def backward_bound(call: Prepared, grad_output: np.ndarray, precision: Precision, expected: Gradients,
                   key_shape: tuple[int, ...], value_shape: tuple[int, ...],
                   extra: np.ndarray | None = None) -> Gradients:
    """The bound ``(B^dQ, B^dK, B^dV)`` of the module docstring, each of its input's shape, from a float64
    :class:`~kqv.reference.prepare.Prepared` call, ``dO (*batch, L, Ev)`` and the exact gradients ``expected``.

    ``key_shape`` and ``value_shape`` are those of the key and value as given (before their heads were mapped);
    ``extra`` ``(*batch, L)``, if given, adds to each row's exponent error ``D_i`` (:func:`weight_errors`).
    ``sinks`` of the result is None: the gradient of the sink logits is not judged.
    """
    u_s, u_a, eta = precision.storage, precision.accumulation, precision.underflow
    omega = weight_flush(precision)
    s = abs(call.scale)
    L, S = call.L, call.S
    weights, keep, log_error = weight_errors(call, precision, extra)
    F, Z = _score_errors(call, grad_output, weights, keep, log_error, precision)
    dO = np.abs(grad_output)  # (*batch, L, Ev)
    n_value = L * _copies(call.batch, tuple(value_shape[:-2]))
    n_key = L * _copies(call.batch, tuple(key_shape[:-2]))
    with np.errstate(over="ignore"):
        spread = np.expm1(log_error + (n_value + 2) * u_a)  # (*batch, L, 1)
    spread = np.where(np.isnan(spread), np.inf, spread)
    value_terms = _transposed(np.where(keep, spread * weights + omega, 0.0)) @ dO  # (*batch, S, Ev)
    empty = ~np.any(keep, axis=-1, keepdims=True)  # (*batch, L, 1)
    if call.masked_rows == "uniform" and S and np.any(empty):  # dO_i / S of each empty row to every value row
        value_terms = value_terms + np.expm1((n_value + 2) * u_a + u_s) \
            * np.sum(np.where(empty, dO, 0.0), axis=-2, keepdims=True) / S  # (*batch, 1, Ev) -> (*batch, S, Ev)
    key, query = np.abs(call.key), np.abs(call.query)
    g_S = np.expm1((S + 2) * u_a) + 3 * u_s
    g_N = np.expm1((n_key + 2) * u_a) + 3 * u_s
    with np.errstate(invalid="ignore", over="ignore"):
        query_terms = s * (F @ key + g_S * (Z @ key))  # (*batch, L, E)
        key_terms = s * (_transposed(F) @ query + g_N * (_transposed(Z) @ query))  # (*batch, S, E)
    d_query = reduce_to(query_terms, call.query.shape)
    d_key = _to_input(call, key_terms, key_shape, call.key.shape)
    d_value = _to_input(call, value_terms, value_shape, call.value.shape)
    finite = [np.where(np.isnan(b), np.inf, b) for b in (d_query, d_key, d_value)]
    return Gradients(
        finite[0] + u_s * np.abs(np.nan_to_num(expected.query)) + 2 * eta * (S + 1),
        finite[1] + u_s * np.abs(expected.key) + 2 * eta * (n_key + 1),
        finite[2] + u_s * np.abs(expected.value) + 2 * eta * (n_value + 1),
    )


def backward_expectation(call: Prepared, grad_output: np.ndarray, precision: Precision,
                         key_shape: tuple[int, ...], value_shape: tuple[int, ...]) -> tuple[Gradients, Gradients]:
    """``(expected, bound)``: the reference's gradients (clauses ``gradient.*``) of a float64 call given ``dO`` and
    their bound, each of its input's shape: the :func:`backward_bound` of an implementation at ``precision`` plus
    that of the reference itself, which computes them in float64 (and at float64 is judged no better than the
    implementation it judges)."""
    expected = input_gradients(call, key_shape, value_shape, *backward(call, grad_output))
    bound = backward_bound(call, grad_output, precision, expected, key_shape, value_shape)
    own = backward_bound(call, grad_output, Precision.of("float64"), expected, key_shape, value_shape)
    return expected, Gradients(*(b + r for b, r in zip(bound[:3], own[:3])))
