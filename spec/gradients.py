"""Section "gradients": the backward pass of scaled dot-product attention.

With ``A = s Q K^T`` (plus a constant mask), ``P = softmax(A)`` by rows and ``O = P V``, a scalar
loss whose gradient with respect to ``O`` is ``dO`` has the gradients

- ``dV = P^T dO`` and ``dP = dO V^T`` (the product ``O = P V``),
- ``dA = P * (dP - rowsum(dP * P))`` (the softmax Jacobian of each row, ``*`` elementwise),
- ``dQ = s dA K`` and ``dK = s dA^T Q`` (the product ``A = s Q K^T``).

Each derivation differentiates a loss ``l = sum(G * X)`` on explicit 2 x 2 symbolic matrices with
sympy, entry by entry, and compares the result with the closed form. The builders take the
closed form as an argument, so a test can check that a wrong one is rejected.
"""

from __future__ import annotations

from typing import Callable

import sympy

from . import symbolic
from .checks import same_matrix
from .clause import Clause, Derivation, Step
from .notation import K, L, P, Q, S, V, d_k, d_v, i, j, k, s

SECTION = ("gradients", "Gradients")
PAGE = "gradients"  # the docs page that renders the section

dO = sympy.MatrixSymbol("dO", L, d_v)
dV = sympy.MatrixSymbol("dV", S, d_v)
dP = sympy.MatrixSymbol("dP", L, S)
dA = sympy.MatrixSymbol("dA", L, S)
dQ = sympy.MatrixSymbol("dQ", L, d_k)
dK = sympy.MatrixSymbol("dK", S, d_k)

Matrix = sympy.ImmutableMatrix
Closed = Callable[..., sympy.ImmutableMatrix]

# The explicit case: L = S = d_k = d_v = 2, with the symbolic scale s.
_SIZE = 2


def _m(name: str) -> Matrix:
    return symbolic.matrix(name, _SIZE, _SIZE, real=True)


def _sum_product(weights: Matrix, values: Matrix) -> sympy.Expr:
    """``sum(weights * values)``, the elementwise product summed over every entry."""
    return sympy.Add(*(a * b for a, b in zip(weights, values)))


def _rowsum_outer(x: Matrix) -> Matrix:
    """``rowsum(x) 1^T``: each row's sum, repeated along the row."""
    return Matrix(x.rows, x.cols, lambda a, b: sum(x.row(a)))


def _hadamard(x: Matrix, y: Matrix) -> Matrix:
    return Matrix(x.rows, x.cols, lambda a, b: x[a, b] * y[a, b])


def gradient_step(text: str, loss: sympy.Expr, variables: Matrix, closed_form: Matrix,
                  where: dict[sympy.Symbol, sympy.Expr] | None = None) -> Step:
    """The step ``d loss / d variables = closed_form``, checked entry by entry.

    The left-hand side is shown as the derivatives of a function ``l`` of ``variables``; the check
    substitutes ``loss`` for ``l``, lets sympy differentiate, and compares with ``closed_form``.
    ``where`` gives symbols of the closed form their values (substituted before the comparison),
    so that the rendered step stays short.
    """
    ell = sympy.Function(r"\ell")(*variables)
    lhs = Matrix(variables.rows, variables.cols, lambda a, b: sympy.Derivative(ell, variables[a, b]))
    values = where or {}

    def check(left: sympy.Basic, right: sympy.Basic) -> bool:
        return same_matrix(left.subs(ell, loss), right.xreplace(values))

    return Step(text, lhs, closed_form, check=check)


def _value_closed(weights: Matrix, upstream: Matrix) -> Matrix:
    return weights.T * upstream


def _weights_closed(upstream: Matrix, values: Matrix) -> Matrix:
    return upstream * values.T


def _scores_closed(weights: Matrix, upstream: Matrix) -> Matrix:
    return _hadamard(weights, upstream - _rowsum_outer(_hadamard(upstream, weights)))


def _query_closed(scale: sympy.Expr, upstream: Matrix, keys: Matrix, queries: Matrix) -> Matrix:
    return scale * upstream * keys


def _key_closed(scale: sympy.Expr, upstream: Matrix, keys: Matrix, queries: Matrix) -> Matrix:
    return scale * upstream.T * queries


def value_derivation(closed: Closed = _value_closed) -> Derivation:
    """``dV = closed(P, dO)`` on the explicit case (the clause's closed form by default)."""
    weights, upstream, values = _m("p"), _m("g"), _m("v")
    loss = _sum_product(upstream, weights * values)
    return Derivation((
        gradient_step("L = S = d_v = 2: sympy differentiates l = sum(dO * O) with O = P V by each entry of V",
                      loss, values, closed(weights, upstream)),
    ))


def weights_derivation(closed: Closed = _weights_closed) -> Derivation:
    """``dP = closed(dO, V)`` on the explicit case."""
    weights, upstream, values = _m("p"), _m("g"), _m("v")
    loss = _sum_product(upstream, weights * values)
    return Derivation((
        gradient_step("L = S = d_v = 2: sympy differentiates l = sum(dO * O) with O = P V by each entry of P",
                      loss, weights, closed(upstream, values)),
    ))


def scores_derivation(closed: Closed = _scores_closed) -> Derivation:
    """``dA = closed(P, dP)`` with ``P = softmax(A)`` on the explicit case."""
    scores, upstream = _m("a"), _m("g")
    weights = symbolic.softmax_rows(scores)
    loss = _sum_product(upstream, weights)
    closed_form = closed(weights, upstream)
    steps = []
    for row in range(_SIZE):
        x = list(scores.row(row))
        jacobian = Matrix(symbolic.softmax(x)).jacobian(x)
        steps.append(Step(
            f"row {row}: the transposed softmax Jacobian (clause softmax.jacobian) applied to row {row} of dP",
            jacobian.T * upstream.row(row).T, closed_form.row(row).T, check=same_matrix))
    steps.append(gradient_step(
        "L = S = 2: sympy differentiates l = sum(dP * P) with P = softmax(A) by each entry of A",
        loss, scores, closed_form))
    return Derivation(tuple(steps))


def _end_to_end(queries: Matrix, keys: Matrix, values: Matrix, upstream: Matrix) -> tuple[sympy.Expr, Matrix]:
    """The loss ``sum(dO * O)`` of attention and the closed-form ``dA`` from the clauses above."""
    weights = symbolic.softmax_rows(s * queries * keys.T)
    loss = _sum_product(upstream, weights * values)
    d_scores = _scores_closed(weights, _weights_closed(upstream, values))
    return loss, d_scores


def _input_derivation(name: str, pick: Callable[..., sympy.ImmutableMatrix], closed: Closed) -> Derivation:
    """``d<name> = closed(s, dA, K, Q)`` on the explicit case: first locally, then end to end."""
    queries, keys, values, upstream, d_scores = _m("q"), _m("k"), _m("v"), _m("g"), _m("b")
    wrt = pick(queries, keys)
    local = _sum_product(d_scores, s * queries * keys.T)
    loss, chained = _end_to_end(queries, keys, values, upstream)
    return Derivation((
        gradient_step(f"L = S = d_k = 2: sympy differentiates l = sum(dA * A) with A = s Q K^T by each entry of {name}",
                      local, wrt, closed(s, d_scores, keys, queries)),
        gradient_step("end to end, L = S = d_k = d_v = 2: l = sum(dO * O) with O = softmax(s Q K^T) V, "
                      "and dA = b given by clauses gradient.weights and gradient.scores",
                      loss, wrt, closed(s, d_scores, keys, queries),
                      where=dict(zip(d_scores, chained))),
    ))


def query_derivation(closed: Closed = _query_closed) -> Derivation:
    """``dQ = closed(s, dA, K, Q)`` on the explicit case: first locally, then end to end."""
    return _input_derivation("Q", lambda queries, keys: queries, closed)


def key_derivation(closed: Closed = _key_closed) -> Derivation:
    """``dK = closed(s, dA, K, Q)`` on the explicit case: first locally, then end to end."""
    return _input_derivation("K", lambda queries, keys: keys, closed)


_UPSTREAM = {"dO": "the gradient of the loss with respect to the output O, (L, d_v)"}

value = Clause(
    id="gradient.value",
    title="Gradient with respect to the values",
    statement="The output is linear in the values, so dV = P^T dO: key row j collects the upstream rows weighted by its column of P.",
    expr=sympy.Eq(dV, P.T * dO),
    derivation=value_derivation(),
    section=SECTION[0],
    symbols={**_UPSTREAM, "dV": "the gradient with respect to V, (S, d_v)"},
)

weights = Clause(
    id="gradient.weights",
    title="Gradient with respect to the weights",
    statement="The output is linear in the weights, so dP = dO V^T: dP_ij is the dot product of upstream row i with value row j.",
    expr=sympy.Eq(dP, dO * V.T),
    derivation=weights_derivation(),
    section=SECTION[0],
    symbols={**_UPSTREAM, "dP": "the gradient with respect to the weights P, (L, S)"},
)

scores = Clause(
    id="gradient.scores",
    title="Gradient with respect to the scores",
    statement=(
        "Each row of weights is the softmax of its row of scores, so dA = P * (dP - rowsum(dP * P)) with * "
        "elementwise: the transposed softmax Jacobian of row i applied to row i of dP, without forming it."
    ),
    expr=sympy.Eq(dA[i, j], P[i, j] * (dP[i, j] - sympy.Sum(dP[i, k] * P[i, k], (k, 0, S - 1)))),
    derivation=scores_derivation(),
    section=SECTION[0],
    symbols={"dA": "the gradient with respect to the scores A, (L, S)"},
)

query = Clause(
    id="gradient.query",
    title="Gradient with respect to the queries",
    statement="The scores are s Q K^T, so dQ = s dA K (a constant additive mask adds nothing).",
    expr=sympy.Eq(dQ, s * dA * K),
    derivation=query_derivation(),
    section=SECTION[0],
    symbols={"dQ": "the gradient with respect to Q, (L, d_k)"},
)

key = Clause(
    id="gradient.key",
    title="Gradient with respect to the keys",
    statement="The scores are s Q K^T, so dK = s dA^T Q: key row j collects the query rows weighted by column j of dA.",
    expr=sympy.Eq(dK, s * dA.T * Q),
    derivation=key_derivation(),
    section=SECTION[0],
    symbols={"dK": "the gradient with respect to K, (S, d_k)"},
)

CLAUSES = (value, weights, scores, query, key)
