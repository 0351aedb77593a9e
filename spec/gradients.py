"""Section "gradients": the backward pass of scaled dot-product attention.

With ``A = s Q K^T`` (plus a constant mask), ``P = softmax(A)`` by rows and ``O = P V``, a scalar
loss whose gradient with respect to ``O`` is ``dO`` has the gradients

- ``dV = P^T dO`` and ``dP = dO V^T`` (the product ``O = P V``),
- ``dA = P * (dP - rowsum(dP * P))`` (the softmax Jacobian of each row, ``*`` elementwise),
- ``dQ = s dA K`` and ``dK = s dA^T Q`` (the product ``A = s Q K^T``).

A row that keeps no key has no softmax; under the conventions ``zeros`` and ``uniform`` its output does not
depend on ``Q`` or ``K`` and its gradients are finite (clause ``gradient.masked-row``).

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
from .notation import K, L, P, Q, S, V, d_k, d_v, e, i, j, k, s

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
SIZE = 2


def explicit(name: str) -> Matrix:
    return symbolic.matrix(name, SIZE, SIZE, real=True)


def sum_product(weights: Matrix, values: Matrix) -> sympy.Expr:
    """``sum(weights * values)``, the elementwise product summed over every entry."""
    return sympy.Add(*(a * b for a, b in zip(weights, values)))


def rowsum_outer(x: Matrix) -> Matrix:
    """``rowsum(x) 1^T``: each row's sum, repeated along the row."""
    return Matrix(x.rows, x.cols, lambda a, b: sum(x.row(a)))


def hadamard(x: Matrix, y: Matrix) -> Matrix:
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


def value_closed(weights: Matrix, upstream: Matrix) -> Matrix:
    return weights.T * upstream


def weights_closed(upstream: Matrix, values: Matrix) -> Matrix:
    return upstream * values.T


def scores_closed(weights: Matrix, upstream: Matrix) -> Matrix:
    return hadamard(weights, upstream - rowsum_outer(hadamard(upstream, weights)))


def query_closed(scale: sympy.Expr, upstream: Matrix, keys: Matrix, queries: Matrix) -> Matrix:
    return scale * upstream * keys


def key_closed(scale: sympy.Expr, upstream: Matrix, keys: Matrix, queries: Matrix) -> Matrix:
    return scale * upstream.T * queries


def value_derivation(closed: Closed = value_closed) -> Derivation:
    """``dV = closed(P, dO)`` on the explicit case (the clause's closed form by default)."""
    weights, upstream, values = explicit("p"), explicit("g"), explicit("v")
    loss = sum_product(upstream, weights * values)
    return Derivation((
        gradient_step("L = S = d_v = 2: sympy differentiates l = sum(dO * O) with O = P V by each entry of V",
                      loss, values, closed(weights, upstream)),
    ))


def weights_derivation(closed: Closed = weights_closed) -> Derivation:
    """``dP = closed(dO, V)`` on the explicit case."""
    weights, upstream, values = explicit("p"), explicit("g"), explicit("v")
    loss = sum_product(upstream, weights * values)
    return Derivation((
        gradient_step("L = S = d_v = 2: sympy differentiates l = sum(dO * O) with O = P V by each entry of P",
                      loss, weights, closed(upstream, values)),
    ))


def scores_derivation(closed: Closed = scores_closed) -> Derivation:
    """``dA = closed(P, dP)`` with ``P = softmax(A)`` on the explicit case."""
    scores, upstream = explicit("a"), explicit("g")
    weights = symbolic.softmax_rows(scores)
    loss = sum_product(upstream, weights)
    closed_form = closed(weights, upstream)
    steps = []
    for row in range(SIZE):
        x = list(scores.row(row))
        jacobian = Matrix(symbolic.softmax(x)).jacobian(x)
        steps.append(Step(
            f"row {row}: the transposed softmax Jacobian (clause softmax.jacobian) applied to row {row} of dP",
            jacobian.T * upstream.row(row).T, closed_form.row(row).T, check=same_matrix))
    steps.append(gradient_step(
        "L = S = 2: sympy differentiates l = sum(dP * P) with P = softmax(A) by each entry of A",
        loss, scores, closed_form))
    steps.append(Step("each row of dA sums to zero (the Jacobian's rows do), so sum_j dK_j = s sum_i (sum_j dA_ij) "
                      "Q_i = 0",
                      Matrix(SIZE, 1, lambda a, b: sum(closed_form.row(a))), Matrix.zeros(SIZE, 1), check=same_matrix))
    return Derivation(tuple(steps))


def end_to_end(queries: Matrix, keys: Matrix, values: Matrix, upstream: Matrix) -> tuple[sympy.Expr, Matrix]:
    """The loss ``sum(dO * O)`` of attention and the closed-form ``dA`` from the clauses above."""
    weights = symbolic.softmax_rows(s * queries * keys.T)
    loss = sum_product(upstream, weights * values)
    d_scores = scores_closed(weights, weights_closed(upstream, values))
    return loss, d_scores


def _input_derivation(name: str, pick: Callable[..., sympy.ImmutableMatrix], closed: Closed) -> Derivation:
    """``d<name> = closed(s, dA, K, Q)`` on the explicit case: first locally, then end to end."""
    queries, keys, values, upstream, d_scores = explicit("q"), explicit("k"), explicit("v"), explicit("g"), explicit("b")
    wrt = pick(queries, keys)
    local = sum_product(d_scores, s * queries * keys.T)
    loss, chained = end_to_end(queries, keys, values, upstream)
    return Derivation((
        gradient_step(f"L = S = d_k = 2: sympy differentiates l = sum(dA * A) with A = s Q K^T by each entry of {name}",
                      local, wrt, closed(s, d_scores, keys, queries)),
        gradient_step("end to end, L = S = d_k = d_v = 2: l = sum(dO * O) with O = softmax(s Q K^T) V, "
                      "and dA = b given by clauses gradient.weights and gradient.scores",
                      loss, wrt, closed(s, d_scores, keys, queries),
                      where=dict(zip(d_scores, chained))),
    ))


def query_derivation(closed: Closed = query_closed) -> Derivation:
    """``dQ = closed(s, dA, K, Q)`` on the explicit case: first locally, then end to end."""
    return _input_derivation("Q", lambda queries, keys: queries, closed)


def key_derivation(closed: Closed = key_closed) -> Derivation:
    """``dK = closed(s, dA, K, Q)`` on the explicit case: first locally, then end to end."""
    return _input_derivation("K", lambda queries, keys: keys, closed)


def _row_symbols(name: str) -> Matrix:
    """Row 0 of a 2 x 2 matrix as symbols ``name_{0 b}``, ``1 x 2``."""
    return Matrix(1, SIZE, lambda a, b: sympy.Symbol(f"{name}_{{0{b}}}", real=True))


def _row_weights(first: Matrix, second: sympy.Expr) -> Matrix:
    """The 2 x 2 weights with row 0 ``first`` and every entry of row 1 ``second``."""
    return Matrix([list(first), [second] * SIZE])


def _uniform_value_closed(weights: Matrix, upstream: Matrix) -> Matrix:
    """``dV = P~^T dO`` with ``P~`` the weights of the uniform convention: row 0 ``weights``, row 1 (no key) ``1/S``."""
    return _row_weights(weights, sympy.Rational(1, SIZE)).T * upstream


def masked_row_derivation(uniform_value: Closed = _uniform_value_closed) -> Derivation:
    """Row 1 of the explicit case keeps no key, row 0 keeps both: under ``zeros`` (``O_1 = 0``) and ``uniform``
    (``O_1`` the mean of the values) sympy differentiates ``l = sum(dO * O)`` by ``Q_1``, ``K`` and ``V``; ``dV``
    under ``uniform`` is ``uniform_value(P_0, dO)`` (the clause's closed form by default)."""
    queries, keys, values, upstream = explicit("q"), explicit("k"), explicit("v"), explicit("g")
    first = symbolic.softmax_rows(s * queries[0, :] * keys.T)  # P_0 = softmax(s Q_0 K^T), 1 x 2
    p, b = _row_symbols("p"), _row_symbols("b")  # row 0 of P and of dA, shown as symbols
    given = {**dict(zip(p, first)), **dict(zip(b, scores_closed(first, weights_closed(upstream[0, :], values))))}
    mean = Matrix(1, SIZE, lambda a, col: (values[0, col] + values[1, col]) / SIZE)  # the mean of the values
    outputs = {  # the convention: (O, the closed form of dV)
        "zeros": (Matrix.vstack(first * values, Matrix.zeros(1, SIZE)), value_closed(_row_weights(p, 0), upstream)),
        "uniform": (Matrix.vstack(first * values, mean), uniform_value(p, upstream)),
    }
    steps = []
    for convention, (output, d_value) in outputs.items():
        loss = sum_product(upstream, Matrix(output))
        case = f"L = S = d_k = d_v = 2, row 1 keeps no key, {convention}: sympy differentiates l = sum(dO * O)"
        steps += [
            gradient_step(f"{case} by each entry of Q_1, which O does not depend on", loss, queries[1, :],
                          Matrix.zeros(1, SIZE)),
            gradient_step(f"{case} by each entry of K: s dA^T Q, row 0 of dA (b) by clauses gradient.weights and "
                          "gradient.scores, row 1 zero", loss, keys, key_closed(s, _row_weights(b, 0), keys, queries),
                          where=given),
            gradient_step(f"{case} by each entry of V: P~^T dO, row 0 of P~ the weights p of row 0 (clause "
                          "gradient.value)", loss, values, d_value, where=given),
        ]
    return Derivation(tuple(steps))


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
        "elementwise: the transposed softmax Jacobian of row i applied to row i of dP, without forming it. Each row "
        "of dA sums to zero, so the key gradients sum to zero over the keys."
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

convention = sympy.Symbol("convention")
P_tilde = sympy.MatrixSymbol(r"\tilde{P}", L, S)

masked_row = Clause(
    id="gradient.masked-row",
    title="Gradients of a fully masked row",
    statement=(
        "A query row i that keeps no key has zeros or uniform output (clause mask.fully-masked-row), which does not "
        "depend on Q or K: its gradients are finite, dA_i = 0 and dQ_i = 0, nothing of it reaches dK, and dV = P~^T dO "
        "with row i of P~ 0 (zeros) or 1/S (uniform), so no NaN leaks into dQ, dK or dV. Under nan the row's output "
        "is NaN whatever the inputs and the clause says nothing of its dQ_i."
    ),
    expr=sympy.And(
        sympy.Eq(dA[i, j], 0),
        sympy.Eq(dQ[i, e], 0),
        sympy.Eq(P_tilde[i, j], sympy.Piecewise((0, sympy.Eq(convention, sympy.Symbol("zeros"))),
                                                (1 / S, sympy.Eq(convention, sympy.Symbol("uniform"))))),
        sympy.Eq(dV, P_tilde.T * dO),
    ),
    derivation=masked_row_derivation(),
    section=SECTION[0],
    symbols={"i": "a query row that keeps no key", "P~": "the weights the convention gives, (L, S)",
             "convention": "zeros or uniform"},
)

CLAUSES = (value, weights, scores, query, key, masked_row)
