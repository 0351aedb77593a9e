"""Section "output": the output is the weighted sum of the values.

``O = P V``, ``O_ic = sum_j P_ij V_jc``. The weights of a row are nonnegative and sum to 1, so each
output entry lies between the smallest and the largest attended value; the weights do not depend
on the values, so attention is linear in ``V``.
"""

from __future__ import annotations

import sympy
from sympy.matrices.expressions.matexpr import MatrixElement

from . import symbolic
from .checks import evaluated, relation, same_matrix
from .clause import Clause, Derivation, Step
from .notation import K, O, P, Q, S, V, Attention, Maximum, Minimum, c, i, j

SECTION = ("output", "Output")
PAGE = "attention"  # the docs page that renders the section

_weighted_sum = sympy.Sum(P[i, j] * V[j, c], (j, 0, S - 1))

weighted_sum = Clause(
    id="output.weighted-sum",
    title="Weighted sum of the values",
    statement=(
        "O = P V: O_ic = sum_j P_ij V_jc over the S keys, for query row 0 <= i < L and value feature 0 <= c < d_v; "
        "O is (L, d_v)."
    ),
    expr=sympy.Eq(O[i, c], _weighted_sum),
    derivation=Derivation((
        Step("the entry (i, c) of the matrix product P V is the sum over keys",
             MatrixElement(P * V, i, c), _weighted_sum, check=evaluated),
    )),
    section=SECTION[0],
    symbols={"P": "attention weights, (L, S)", "V": "value, (S, d_v)", "O": "output, (L, d_v)"},
)


def _convex_hull() -> Derivation:
    scores = list(sympy.symbols("x_0:3", real=True))
    values = list(sympy.symbols("v_0:3", real=True))
    gaps = list(sympy.symbols("d_0:3", nonnegative=True))
    low, high = sympy.symbols("m M", real=True)
    weights = symbolic.softmax(scores)
    output = sympy.Add(*(w * v for w, v in zip(weights, values)))
    steps = [
        Step("S = 3: O - m = sum_j p_j (v_j - m) for any m, because sum_j p_j = 1",
             output - low, sympy.Add(*(w * (v - low) for w, v in zip(weights, values)))),
    ]
    steps += [
        Step(f"p_{index} > 0 (a positive exponential over a positive sum)",
             sympy.Gt(weight, 0, evaluate=False), sympy.true, check=relation)
        for index, weight in enumerate(weights)
    ]
    above_min = {v: low + d for v, d in zip(values, gaps)}
    below_max = {v: high - d for v, d in zip(values, gaps)}
    steps += [
        Step("with m = min_j v_j, i.e. v_j = m + d_j with d_j >= 0: O >= m",
             sympy.Ge(output.subs(above_min), low, evaluate=False), sympy.true, check=relation),
        Step("with M = max_j v_j, i.e. v_j = M - d_j with d_j >= 0: O <= M",
             sympy.Le(output.subs(below_max), high, evaluate=False), sympy.true, check=relation),
    ]
    return Derivation(tuple(steps))


convex_hull = Clause(
    id="output.convex-hull",
    title="The output lies between the attended values",
    statement=(
        "For every row with at least one kept key, min_j V_jc <= O_ic <= max_j V_jc with j over the kept keys of row i, "
        "since the weights are nonnegative, zero on masked keys and sum to 1."
    ),
    expr=sympy.And(sympy.Le(Minimum(V[j, c], j), O[i, c]), sympy.Le(O[i, c], Maximum(V[j, c], j))),
    derivation=_convex_hull(),
    section=SECTION[0],
)

alpha, beta = sympy.symbols("alpha beta")
V_1 = sympy.MatrixSymbol("V_1", S, V.shape[1])
V_2 = sympy.MatrixSymbol("V_2", S, V.shape[1])


def _linear_in_value() -> Derivation:
    query = symbolic.matrix("q", 2, 1, real=True)
    key = symbolic.matrix("k", 2, 1, real=True)
    first = symbolic.matrix("v", 2, 2, real=True)
    second = symbolic.matrix("w", 2, 2, real=True)
    return Derivation((
        Step("L = S = 2, d_k = 1, d_v = 2, every entry",
             symbolic.sdpa(query, key, alpha * first + beta * second),
             alpha * symbolic.sdpa(query, key, first) + beta * symbolic.sdpa(query, key, second),
             check=same_matrix),
    ))


linear_in_value = Clause(
    id="output.linear-in-value",
    title="Attention is linear in the value",
    statement=(
        "For fixed query, key and mask, Attention(Q, K, alpha V_1 + beta V_2) = alpha Attention(Q, K, V_1) "
        "+ beta Attention(Q, K, V_2): the weights do not depend on V."
    ),
    expr=sympy.Eq(Attention(Q, K, alpha * V_1 + beta * V_2),
                  alpha * Attention(Q, K, V_1) + beta * Attention(Q, K, V_2)),
    derivation=_linear_in_value(),
    section=SECTION[0],
)

CLAUSES = (weighted_sum, convex_hull, linear_in_value)
