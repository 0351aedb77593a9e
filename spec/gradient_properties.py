"""Section "gradient-properties": what the gradients of attention owe besides their closed forms (section "gradients").

The accuracy an implementation's backward pass owes (clause ``gradient.accuracy``, the bound derived in
docs/error-model.md), and the properties a conformance check can test by comparing a backend's gradients with
themselves: linearity in ``dO``, nothing to a key no query keeps, the causal rows, the group sum of grouped-query
attention, the inputs left as they were and bitwise repeatable gradients.

Each derivation works on an explicit case with sympy, as the section "gradients" does: the closed forms of that
section, or the loss ``l = sum(dO * O)`` differentiated by sympy itself.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import evaluated, same_matrix
from .clause import Clause, Derivation, Step
from .gradients import (SIZE, dK, dO, dQ, dV, explicit, gradient_step, key_closed, query_closed, scores_closed,
                        sum_product, value_closed, weights_closed)
from .notation import L, S, c, d_k, d_v, e, i, j, s

SECTION = ("gradient-properties", "Properties of the gradients")
PAGE = "gradients"  # the docs page that renders the section

Matrix = sympy.ImmutableMatrix
_a, _b = sympy.symbols("a b", real=True)


def _chain(weights: Matrix, upstream: Matrix, queries: Matrix, keys: Matrix, values: Matrix) -> tuple[Matrix, ...]:
    """``(dQ, dK, dV)`` by the closed forms of section "gradients", for the weights ``P`` held fixed."""
    d_scores = scores_closed(weights, weights_closed(upstream, values))
    return (query_closed(s, d_scores, keys, queries), key_closed(s, d_scores, keys, queries),
            value_closed(weights, upstream))


def linearity_derivation(chain=_chain) -> Derivation:
    """L = S = d_k = d_v = 2: each closed form at ``a G + b H`` is ``a`` times it at ``G`` plus ``b`` times it at ``H``
    (the weights do not depend on ``dO``); ``chain(P, dO, Q, K, V) -> (dQ, dK, dV)``, the clauses' by default."""
    weights, queries, keys, values, first, second = (explicit(name) for name in "pqkvgh")
    mixed = chain(weights, _a * first + _b * second, queries, keys, values)
    apart = zip(chain(weights, first, queries, keys, values), chain(weights, second, queries, keys, values))
    return Derivation(tuple(
        Step(f"L = S = d_k = d_v = 2: {name} of a G + b H is a {name}(G) + b {name}(H), P held fixed",
             together, _a * one + _b * two, check=same_matrix)
        for name, together, (one, two) in zip(("dQ", "dK", "dV"), mixed, apart)))


def _masked(rows: int, keys: int, dropped) -> Matrix:
    """An additive mask ``(rows, keys)``: ``-oo`` where ``dropped(i, j)``, 0 elsewhere."""
    return Matrix(rows, keys, lambda a, b: -sympy.oo if dropped(a, b) else 0)


def _unkept(a: int, b: int) -> bool:
    return b == 1  # key 1, for every query row


def _later(a: int, b: int) -> bool:
    return b > a  # the top-left causal rule drops key b for query a


def unkept_key_derivation(dropped=_unkept) -> Derivation:
    """L = S = d_k = d_v = 2, key 1 masked for both query rows (``dropped(i, j)``): sympy differentiates
    ``l = sum(dO * O)`` by key 1 and value 1, and gets zero."""
    queries, keys, values, upstream = (explicit(name) for name in "qkvg")
    output = symbolic.sdpa(queries, keys, values, mask=_masked(SIZE, SIZE, dropped), scale=s)
    loss = sum_product(upstream, output)
    return Derivation((
        gradient_step("L = S = d_k = d_v = 2, key 1 masked for every query: sympy differentiates l = sum(dO * O) by "
                      "each entry of K_1", loss, keys[1, :], Matrix.zeros(1, SIZE)),
        gradient_step("the same by each entry of V_1", loss, values[1, :], Matrix.zeros(1, SIZE)),
    ))


def causal_derivation(dropped=_later) -> Derivation:
    """L = S = 2, d_k = d_v = 1, the top-left causal mask (``dropped(i, j)``): sympy differentiates ``l = sum(dO * O)``
    by Q, K and V, then those gradients by the later key, value and the other rows of ``dO``."""
    queries, keys, values, upstream = (symbolic.matrix(name, SIZE, 1, real=True) for name in "qkvg")
    output = symbolic.sdpa(queries, keys, values, mask=_masked(SIZE, SIZE, dropped), scale=s)
    loss = sum_product(upstream, output)
    d_query0 = sympy.diff(loss, queries[0, 0])  # dQ_0
    d_key1, d_value1 = sympy.diff(loss, keys[1, 0]), sympy.diff(loss, values[1, 0])  # dK_1, dV_1
    zero = sympy.Integer(0)
    return Derivation((
        Step("L = S = 2, d_k = d_v = 1, causal: dQ_0 = dl/dQ_0 does not depend on key 1",
             sympy.Derivative(d_query0, keys[1, 0]), zero, check=evaluated),
        Step("dQ_0 does not depend on value 1", sympy.Derivative(d_query0, values[1, 0]), zero, check=evaluated),
        Step("dQ_0 does not depend on row 1 of dO", sympy.Derivative(d_query0, upstream[1, 0]), zero, check=evaluated),
        Step("dK_1 collects nothing from row 0 of dO", sympy.Derivative(d_key1, upstream[0, 0]), zero,
             check=evaluated),
        Step("dV_1 collects nothing from row 0 of dO", sympy.Derivative(d_value1, upstream[0, 0]), zero,
             check=evaluated),
    ))


def group_sum_derivation(summed: int = 2) -> Derivation:
    """L = S = 2, d_k = d_v = 1, two query heads reading one key/value head: sympy differentiates
    ``l = sum(dO_0 * O_0) + sum(dO_1 * O_1)`` by K and V, and gets the sums of the closed forms of the first
    ``summed`` heads (both, by the clause)."""
    keys, values = (symbolic.matrix(name, SIZE, 1, real=True) for name in "kv")
    heads = [tuple(symbolic.matrix(f"{name}{h}", SIZE, 1, real=True) for name in "qg") for h in range(2)]
    loss, d_key, d_value, given = sympy.Integer(0), Matrix.zeros(SIZE, 1), Matrix.zeros(SIZE, 1), {}
    for h, (queries, upstream) in enumerate(heads):
        weights = symbolic.softmax_rows(s * queries * keys.T)
        loss += sum_product(upstream, weights * values)
        p, b = explicit(f"p{h}"), explicit(f"b{h}")  # this head's P and dA, shown as symbols
        given.update(zip(p, weights))
        given.update(zip(b, scores_closed(weights, weights_closed(upstream, values))))
        if h < summed:
            d_key += key_closed(s, b, keys, queries)
            d_value += value_closed(p, upstream)
    return Derivation((
        gradient_step("L = S = 2, d_k = d_v = 1, heads 0 and 1 read one key/value head: sympy differentiates "
                      "l = sum(dO_0 * O_0) + sum(dO_1 * O_1) by each entry of K: the sum of s dA_h^T Q_h (clause "
                      "gradient.key) over the two heads", loss, keys, d_key, where=given),
        gradient_step("the same by each entry of V: the sum of P_h^T dO_h (clause gradient.value)", loss, values,
                      d_value, where=given),
    ))


_hat = {name: sympy.MatrixSymbol(rf"\widehat{{{name}}}", *shape)
        for name, shape in (("dQ", (L, d_k)), ("dK", (S, d_k)), ("dV", (S, d_v)))}
_bound = {name: sympy.MatrixSymbol(f"B^{{{name}}}", *shape)
          for name, shape in (("dQ", (L, d_k)), ("dK", (S, d_k)), ("dV", (S, d_v)))}

accuracy = Clause(
    id="gradient.accuracy",
    page="error-model",  # with the error model it states
    title="Forward-error bound of the backward pass",
    statement=(
        "On the same inputs and dO rounded to the dtype, each entry of dQ, dK and dV is within its bound of the exact "
        "gradient: with W_ij = sum_c |dO_ic||V_jc|, Y_i = sum_j P_ij W_ij and each weight off by a factor "
        "exp(+-lambda_i), lambda_i = 2 D_i + 6 u_s + (4 S + 4) u_a + 2 u_s (|lse_i| + log n_i), the error of dA_ij is "
        "at most F_ij = P_ij (alpha_i W_ij + beta_i Y_i) (alpha_i, beta_i about lambda_i plus (E_v + S) u_a), and "
        "B^dQ_ie = |s| sum_j F_ij |K_je| + (expm1((S + 2) u_a) + 3 u_s) |s| sum_j P_ij (W_ij + Y_i) |K_je| "
        "+ u_s |dQ_ie|, "
        "B^dK likewise with Q over the N_K rows summed into key j, B^dV_jc = sum_i expm1(lambda_i + (N_V + 2) u_a) "
        "P_ij |dO_ic| + u_s |dV_jc|, plus underflow terms (docs/error-model.md)."
    ),
    expr=sympy.And(*(sympy.Le(sympy.Abs(_hat[name][a, b] - exact[a, b]), _bound[name][a, b])
                     for name, exact, (a, b) in (("dQ", dQ, (i, e)), ("dK", dK, (j, e)), ("dV", dV, (j, c))))),
    section=SECTION[0],
    symbols={"dQ^": "the implementation's gradient of Q", "B^dQ": "its bound, (L, d_k)", "u_s": "unit roundoff of "
             "the storage dtype", "u_a": "unit roundoff of the accumulation", "D_i": "the forward's exponent error "
             "(clause attention.accuracy)"},
)

_G, _H = sympy.MatrixSymbol("G", L, d_v), sympy.MatrixSymbol("H", L, d_v)
_grad = sympy.Function(r"\nabla")

linearity = Clause(
    id="gradient.linearity",
    title="The gradients are linear in dO",
    statement=(
        "For fixed Q, K and V the gradients are linear in the upstream gradient: (dQ, dK, dV) of a G + b H are a times "
        "those of G plus b times those of H (the weights do not depend on dO, and each closed form is linear in it)."
    ),
    expr=sympy.Eq(_grad(_a * _G + _b * _H), _a * _grad(_G) + _b * _grad(_H)),
    derivation=linearity_derivation(),
    section=SECTION[0],
    symbols={r"\nabla": "(dQ, dK, dV) as a function of dO", "G, H": "two upstream gradients, (L, d_v)"},
)

_P = sympy.MatrixSymbol("P", L, S)

unkept_key = Clause(
    id="gradient.unkept-key",
    title="No gradient to a key no query keeps",
    statement=(
        "A key j that no query row keeps (masked in every row, or past every row's causal limit) has P_ij = 0 for "
        "every i, so dA_ij = 0 and dK_j = 0, dV_j = 0, whatever its key and value (rows that keep no key aside, which "
        "reach every value row under the uniform convention)."
    ),
    expr=sympy.Implies(sympy.Eq(sympy.Sum(_P[i, j], (i, 0, L - 1)), 0),
                       sympy.And(sympy.Eq(dK[j, e], 0), sympy.Eq(dV[j, c], 0))),
    derivation=unkept_key_derivation(),
    section=SECTION[0],
)

causal = Clause(
    id="gradient.causal",
    title="Causal gradients do not look ahead",
    statement=(
        "With the top-left causal mask, dQ of row i depends on no key or value j > i and on no other row of dO, and "
        "dK and dV of key j collect only the rows i >= j (bottom-right: j > i + S - L and i >= j - S + L)."
    ),
    expr=sympy.Implies(j > i, sympy.And(
        sympy.Eq(sympy.Derivative(dQ[i, e], sympy.MatrixSymbol("K", S, d_k)[j, e]), 0),
        sympy.Eq(sympy.Derivative(dQ[i, e], sympy.MatrixSymbol("V", S, d_v)[j, c]), 0),
        sympy.Eq(sympy.Derivative(dK[j, e], dO[i, c]), 0),
    )),
    derivation=causal_derivation(),
    section=SECTION[0],
)

_h = sympy.Symbol("h", integer=True, nonnegative=True)
_G_size = sympy.Symbol("G", integer=True, positive=True)
_dK_head = sympy.IndexedBase(r"dK^{(h)}")

group_sum = Clause(
    id="gradient.group-sum",
    title="Grouped-query gradients sum over the group",
    statement=(
        "With enable_gqa, key/value head g is read by the G query heads h = g G .. g G + G - 1, so its dK and dV are "
        "the sums over those heads of the gradients each head's attention gives it (the same as the gradients of the "
        "call on K and V repeated in place, summed over each group); dQ is unchanged."
    ),
    expr=sympy.Eq(sympy.Symbol("dK_g"), sympy.Sum(_dK_head[_h], (_h, sympy.Symbol("g") * _G_size,
                                                                  (sympy.Symbol("g") + 1) * _G_size - 1))),
    derivation=group_sum_derivation(),
    section=SECTION[0],
    symbols={"dK^(h)": "the gradient query head h's attention gives the key", "G": "query heads per key/value head"},
)

inputs_unmodified = Clause(
    id="gradient.inputs-unmodified",
    title="The backward pass leaves its inputs as they were",
    statement=(
        "After a backward pass, query, key, value, the mask and dO hold bitwise the values they held before it "
        "(no in-place scaling of dO or of the inputs)."
    ),
    section=SECTION[0],
)

determinism = Clause(
    id="gradient.determinism",
    title="Deterministic backward pass",
    statement=(
        "Two backward passes on the same inputs and dO give bitwise identical dQ, dK and dV (where the backend "
        "declares determinism: no atomic accumulation in a varying order)."
    ),
    section=SECTION[0],
)

CLAUSES = (accuracy, linearity, unkept_key, causal, group_sum, inputs_unmodified, determinism)
