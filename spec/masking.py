"""Section "masking": which keys each query may attend to.

A mask is added to the scores before the softmax: ``softmax(A + M)``. A bool keep-mask ``m`` is the
additive mask ``M_ij = 0`` where ``m_ij`` is True and ``-inf`` where it is False; ``exp(-inf) = 0``
gives a masked key weight exactly 0. The causal masks keep key ``j`` for query ``i`` iff ``j <= i``
(top-left) or ``j <= i + S - L`` (bottom-right).
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import evaluated
from .clause import Clause, Derivation, Step
from .notation import A, K, L, M, O, P, Q, S, V, c, d_k, e, i, j, k, s

SECTION = ("masking", "Masking")
PAGE = "masking"  # the docs page that renders the section

m = sympy.MatrixSymbol("m", L, S)

_scores = s * sympy.Sum(Q[i, e] * K[j, e], (e, 0, d_k - 1))

keep_mask = Clause(
    id="mask.bool",
    title="Bool keep-mask",
    statement=(
        "A bool mask m (L, S) is a keep-mask: m_ij = True (1) means key j takes part in query i's softmax; "
        "it acts as the additive mask M_ij = 0 where m_ij is True and -inf where it is False, so a masked score becomes -inf."
    ),
    expr=sympy.Eq(M[i, j], sympy.Piecewise((0, sympy.Eq(m[i, j], 1)), (-sympy.oo, True))),
    section=SECTION[0],
    symbols={"m": "bool keep-mask, (L, S), broadcast over batch", "M": "additive mask, (L, S)"},
)

additive = Clause(
    id="mask.additive",
    title="Additive float mask",
    statement=(
        "A float mask M (L, S), broadcast over batch, is added to the scaled scores before the softmax: "
        "A_ij = s sum_e Q_ie K_je + M_ij; entries may be -inf (the key is masked) or any finite value (a bias)."
    ),
    expr=sympy.Eq(A[i, j], _scores + M[i, j]),
    section=SECTION[0],
    symbols={"M": "additive mask, (L, S), entries in R or -inf"},
)

_top_left = sympy.Piecewise((0, j <= i), (-sympy.oo, True))
_bottom_right = sympy.Piecewise((0, j <= i + S - L), (-sympy.oo, True))

causal_top_left = Clause(
    id="mask.causal.top-left",
    title="Causal mask, top-left aligned",
    statement=(
        "is_causal (top-left alignment, the default): query i keeps key j iff j <= i, "
        "for 0 <= i < L and 0 <= j < S; M_ij = 0 if j <= i else -inf."
    ),
    expr=sympy.Eq(M[i, j], _top_left),
    section=SECTION[0],
    symbols={"i": "query row", "j": "key row"},
)

causal_bottom_right = Clause(
    id="mask.causal.bottom-right",
    title="Causal mask, bottom-right aligned",
    statement=(
        "is_causal with bottom-right alignment: query i keeps key j iff j <= i + S - L, so the last query sees every key; "
        "when L > S the first L - S query rows keep no key (see mask.fully-masked-row); with L = S it is the top-left mask."
    ),
    expr=sympy.Eq(M[i, j], _bottom_right),
    derivation=Derivation((
        Step("with S = L the bottom-right mask is the top-left mask",
             _bottom_right.subs(S, L), _top_left),
    )),
    section=SECTION[0],
    symbols={"L": "query length", "S": "key length"},
)

convention = sympy.Symbol("convention")
_mean_of_values = sympy.Sum(V[j, c], (j, 0, S - 1)) / S

fully_masked_row = Clause(
    id="mask.fully-masked-row",
    title="A row with every key masked",
    statement=(
        "If query row i keeps no key, its softmax is 0/0 and the spec defines no number; three conventions are seen in the wild "
        "and an implementation must state its own: zeros (O_i = 0), nan (O_i = NaN, the IEEE result of 0/0), "
        "uniform (p_ij = 1/S for every j, so O_i is the mean over j of V_j, "
        "what an absorbing finite mask such as -finfo.max gives)."
    ),
    expr=sympy.Eq(O[i, c], sympy.Piecewise(
        (0, sympy.Eq(convention, sympy.Symbol("zeros"))),
        (sympy.nan, sympy.Eq(convention, sympy.Symbol("nan"))),
        (_mean_of_values, sympy.Eq(convention, sympy.Symbol("uniform"))),
    )),
    derivation=Derivation((
        Step("uniform: a row of S equal finite scores x has weights 1/S",
             sympy.exp(sympy.Symbol("x")) / sympy.Sum(sympy.exp(sympy.Symbol("x")), (k, 0, S - 1)), 1 / S,
             check=evaluated),
        Step("so the uniform row's output is the mean of the values",
             sympy.Sum(V[j, c] / S, (j, 0, S - 1)), _mean_of_values, check=evaluated),
    )),
    section=SECTION[0],
    symbols={"convention": "zeros, nan or uniform"},
)


def _zero_weight_derivation() -> Derivation:
    x0, x1, x2 = sympy.symbols("x_0 x_1 x_2", real=True)
    v0, v1, v2 = sympy.symbols("v_0 v_1 v_2", real=True)
    p0, p1, p2 = symbolic.softmax([x0, x1, x2])
    output = p0 * v0 + p1 * v1 + p2 * v2
    return Derivation((
        Step("S = 3: the weight of key 2 tends to 0 as its score tends to -inf",
             sympy.Limit(p2, x2, -sympy.oo), sympy.Integer(0), check=evaluated),
        Step("its value cannot move the output: dO/dv_2 tends to 0",
             sympy.Limit(sympy.Derivative(output, v2), x2, -sympy.oo), sympy.Integer(0), check=evaluated),
        Step("the other weights are the softmax of the kept scores alone",
             sympy.Limit(p0, x2, -sympy.oo), sympy.exp(x0) / (sympy.exp(x0) + sympy.exp(x1)), check=evaluated),
        Step("with M = -inf the masked exponential is exactly exp(-inf) = 0",
             sympy.Limit(sympy.exp(x2 - sympy.Symbol("u")), sympy.Symbol("u"), sympy.oo), sympy.Integer(0),
             check=evaluated),
    ))


zero_weight = Clause(
    id="mask.zero-weight",
    title="A masked key has weight exactly 0",
    statement=(
        "A masked key (m_ij False, or M_ij = -inf) gets weight P_ij = 0 exactly, not a small number; "
        "its value V_j cannot move O_i and the kept weights are the softmax of the kept scores alone."
    ),
    expr=sympy.Implies(sympy.Eq(m[i, j], 0), sympy.Eq(P[i, j], 0)),
    derivation=_zero_weight_derivation(),
    section=SECTION[0],
    symbols={"P": "attention weights, (L, S)"},
)


def _causal_independence_derivation() -> Derivation:
    """L = S = 3, d_k = d_v = 1: the output under the top-left causal mask, differentiated."""
    size = 3
    query = symbolic.matrix("q", size, 1, real=True)
    key = symbolic.matrix("k", size, 1, real=True)
    value = symbolic.matrix("v", size, 1, real=True)
    mask = sympy.ImmutableMatrix(size, size, lambda a, b: _top_left.subs({i: a, j: b}))
    output = symbolic.sdpa(query, key, value, mask=mask)
    steps = []
    for a in range(size):
        for b in range(a + 1, size):
            steps.append(Step(f"O_{a} does not depend on key {b} > {a}",
                              sympy.Derivative(output[a, 0], key[b, 0]), sympy.Integer(0), check=evaluated))
            steps.append(Step(f"O_{a} does not depend on value {b} > {a}",
                              sympy.Derivative(output[a, 0], value[b, 0]), sympy.Integer(0), check=evaluated))
    # The same with a finite mask value -u, in the limit u -> oo.
    u = sympy.Symbol("u", positive=True)
    finite = mask.applyfunc(lambda entry: -u if entry == -sympy.oo else entry)
    limited = symbolic.sdpa(query, key, value, mask=finite)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        steps.append(Step(f"with -u for -inf, dO_{a}/dv_{b} -> 0 as u -> oo",
                          sympy.Limit(sympy.Derivative(limited[a, 0], value[b, 0]), u, sympy.oo),
                          sympy.Integer(0), check=evaluated))
    steps.append(Step("with -u for -inf, dO_0/dk_2 -> 0 as u -> oo",
                      sympy.Limit(sympy.Derivative(limited[0, 0], key[2, 0]), u, sympy.oo),
                      sympy.Integer(0), check=evaluated))
    kept = [sympy.exp(query[1, 0] * key[b, 0]) for b in range(2)]
    steps.append(Step("but O_1 does depend on value 0 <= 1, with weight p_10",
                      sympy.Derivative(output[1, 0], value[0, 0]), kept[0] / (kept[0] + kept[1]), check=evaluated))
    return Derivation(tuple(steps))


causal_independence = Clause(
    id="mask.causal.independence",
    title="Causal attention does not look ahead",
    statement=(
        "With the top-left causal mask, output row i does not depend on key j or value j for any j > i: "
        "dO_ic/dK_je = 0 and dO_ic/dV_jc = 0 (bottom-right: for j > i + S - L)."
    ),
    expr=sympy.Implies(j > i, sympy.And(
        sympy.Eq(sympy.Derivative(O[i, c], K[j, e]), 0),
        sympy.Eq(sympy.Derivative(O[i, c], V[j, c]), 0),
    )),
    derivation=_causal_independence_derivation(),
    section=SECTION[0],
)

CLAUSES = (
    keep_mask,
    additive,
    causal_top_left,
    causal_bottom_right,
    fully_masked_row,
    zero_weight,
    causal_independence,
)
