"""Section "softmax": the weights are the softmax of each row of the scores, over the keys.

``p_j = exp(x_j) / sum_k exp(x_k)`` for a row ``x`` of ``S`` scores. The weights are positive, sum
to 1, do not change when a constant is added to the row (which makes the max-subtracted form
exact), and have the Jacobian ``diag(p) - p p^T``.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import evaluated, relation, same_matrix
from .clause import Clause, Derivation, Step
from .notation import Maximum, S, i, j, k

SECTION = ("softmax", "Softmax")
PAGE = "attention"  # the docs page that renders the section

x, p = sympy.IndexedBase("x"), sympy.IndexedBase("p")
a = sympy.Symbol("a", real=True)
l = sympy.Symbol("l", integer=True, nonnegative=True)  # noqa: E741 - the bound index of the row maximum


def _softmax(row: sympy.IndexedBase, index: sympy.Symbol, shift: sympy.Expr = 0) -> sympy.Expr:
    return sympy.exp(row[index] + shift) / sympy.Sum(sympy.exp(row[k] + shift), (k, 0, S - 1))


def _vector(name: str, size: int) -> list[sympy.Symbol]:
    return list(sympy.symbols(f"{name}_0:{size}", real=True))


definition = Clause(
    id="softmax.definition",
    title="Softmax",
    statement=(
        "The weights of query row i are the softmax of its scores over the S keys: "
        "p_j = exp(x_j) / sum_k exp(x_k) for 0 <= j < S, with x = A_i the row of scores (the last axis)."
    ),
    expr=sympy.Eq(p[j], _softmax(x, j)),
    section=SECTION[0],
    symbols={"x": "one row of scores, (S,)", "p": "its weights, (S,)"},
)


def _rows_sum_to_one() -> Derivation:
    numerators = sympy.Sum(sympy.exp(x[j]), (j, 0, S - 1))
    denominator = sympy.Sum(sympy.exp(x[k]), (k, 0, S - 1))
    three = _vector("x", 3)
    return Derivation((
        Step("the denominator does not depend on j and comes out of the sum",
             sympy.Sum(_softmax(x, j), (j, 0, S - 1)), numerators / denominator, check=evaluated),
        Step("numerator and denominator are the same sum (rename the summation index)",
             numerators / denominator, sympy.Integer(1), check=evaluated),
        Step("S = 3, written out", sympy.Add(*symbolic.softmax(three)), sympy.Integer(1)),
    ))


rows_sum_to_one = Clause(
    id="softmax.rows-sum-to-one",
    title="Each row of weights sums to 1",
    statement="For every row with at least one kept key, sum_j p_j = 1 (and every p_j >= 0).",
    expr=sympy.Eq(sympy.Sum(p[j], (j, 0, S - 1)), 1),
    derivation=_rows_sum_to_one(),
    section=SECTION[0],
)


def _shift_invariance() -> Derivation:
    three = _vector("x", 3)
    return Derivation((
        Step("exp(x_j + a) = exp(a) exp(x_j)", sympy.exp(x[j] + a), sympy.exp(a) * sympy.exp(x[j]),
             check=lambda lhs, rhs: sympy.expand(lhs - rhs) == 0 or sympy.powsimp(lhs - rhs) == 0),
        Step("exp(a) comes out of the denominator's sum",
             sympy.Sum(sympy.exp(x[k] + a), (k, 0, S - 1)),
             sympy.exp(a) * sympy.Sum(sympy.exp(x[k]), (k, 0, S - 1)), check=evaluated),
        Step("and cancels: softmax(x + a)_j = softmax(x)_j", _softmax(x, j, a), _softmax(x, j), check=evaluated),
        Step("S = 3, written out, every entry",
             sympy.ImmutableMatrix(symbolic.softmax([entry + a for entry in three])),
             sympy.ImmutableMatrix(symbolic.softmax(three)), check=same_matrix),
    ))


shift_invariance = Clause(
    id="softmax.shift-invariance",
    title="Shift invariance",
    statement="Adding the same constant a to every score of a row leaves its weights unchanged: softmax(x + a) = softmax(x).",
    expr=sympy.Eq(_softmax(x, j, a), _softmax(x, j), evaluate=False),
    derivation=_shift_invariance(),
    section=SECTION[0],
    symbols={"a": "a constant, the same for the whole row"},
)


def _stable() -> Derivation:
    three = _vector("x", 3)
    largest = sympy.Max(*three)
    m_ = sympy.Symbol("m", real=True)
    gaps = sympy.symbols("d_1 d_2", nonnegative=True)
    below = [m_, m_ - gaps[0], m_ - gaps[1]]
    return Derivation((
        Step("with any constant m, the shifted form is the definition (shift invariance, a = -m)",
             _softmax(x, j, -m_), _softmax(x, j), check=evaluated),
        Step("S = 3 with m = max(x_0, x_1, x_2), every entry",
             sympy.ImmutableMatrix(symbolic.softmax([entry - largest for entry in three])),
             sympy.ImmutableMatrix(symbolic.softmax(three)), check=same_matrix),
        Step("no overflow, no 0/0: with x_0 = m the max, the denominator is at least exp(0) = 1",
             sympy.Ge(sympy.Add(*(sympy.exp(entry - m_) for entry in below)), 1, evaluate=False), sympy.true,
             check=relation),
    ))


stable = Clause(
    id="softmax.stable",
    title="Max-subtracted softmax",
    statement=(
        "p_j = exp(x_j - max_l x_l) / sum_k exp(x_k - max_l x_l) over the kept keys; it equals the definition by "
        "shift invariance, every exponent is <= 0 and the denominator is >= 1."
    ),
    expr=sympy.Eq(p[j], sympy.exp(x[j] - Maximum(x[l], l))
                  / sympy.Sum(sympy.exp(x[k] - Maximum(x[l], l)), (k, 0, S - 1))),
    derivation=_stable(),
    section=SECTION[0],
)


def _jacobian() -> Derivation:
    three = _vector("x", 3)
    weights = symbolic.softmax(three)
    steps = [
        Step(f"dp_{row}/dx_{column} = p_{row} (delta_{row}{column} - p_{column})",
             sympy.Derivative(weights[row], three[column]),
             weights[row] * (sympy.KroneckerDelta(row, column) - weights[column]), check=evaluated)
        for row in range(3) for column in range(3)
    ]
    vector = sympy.ImmutableMatrix(weights)
    steps.append(Step("as a matrix: the Jacobian is diag(p) - p p^T",
                      sympy.ImmutableMatrix(symbolic.softmax(three)).jacobian(three),
                      sympy.ImmutableMatrix(sympy.diag(*weights)) - vector * vector.T, check=same_matrix))
    return Derivation(tuple(steps))


jacobian = Clause(
    id="softmax.jacobian",
    page="gradients",  # with the gradient clauses it serves
    title="Jacobian of softmax",
    statement="dp_i/dx_j = p_i (delta_ij - p_j): the Jacobian of a row's softmax is diag(p) - p p^T (symmetric, rows sum to 0).",
    expr=sympy.Eq(sympy.Derivative(p[i], x[j]), p[i] * (sympy.KroneckerDelta(i, j) - p[j])),
    derivation=_jacobian(),
    section=SECTION[0],
    symbols={"delta": "Kronecker delta"},
)

def _online() -> Derivation:
    scores = _vector("x", 3)
    values = _vector("v", 3)
    first, second = sympy.symbols("m m'", real=True)  # the running max after block 1, after block 2
    running_sum = sympy.exp(scores[0] - first) + sympy.exp(scores[1] - first)  # l after block 1 (keys 0, 1)
    running_out = sympy.exp(scores[0] - first) * values[0] + sympy.exp(scores[1] - first) * values[1]  # o
    rescale = sympy.exp(first - second)
    new_sum = running_sum * rescale + sympy.exp(scores[2] - second)  # l' after block 2 (key 2)
    new_out = running_out * rescale + sympy.exp(scores[2] - second) * values[2]  # o'
    weights = symbolic.softmax(scores)
    return Derivation((
        Step("rescaling block 1's running sum by exp(m - m') gives the sum shifted by m'",
             running_sum * rescale, sympy.exp(scores[0] - second) + sympy.exp(scores[1] - second),
             check=lambda lhs, rhs: sympy.simplify(sympy.powsimp(sympy.expand(lhs - rhs))) == 0),
        Step("l' is the sum over all three keys shifted by m'",
             new_sum, sympy.Add(*(sympy.exp(x_ - second) for x_ in scores)),
             check=lambda lhs, rhs: sympy.simplify(sympy.powsimp(sympy.expand(lhs - rhs))) == 0),
        Step("o'/l' is the softmax-weighted sum of the values, whatever the shifts m and m'",
             new_out / new_sum, sympy.Add(*(w * v_ for w, v_ in zip(weights, values)))),
    ))


_m, _m_new = sympy.Symbol("m", real=True), sympy.Symbol("m'", real=True)
_block = sympy.symbols("j_0 j_1", integer=True, nonnegative=True)  # the block's keys are j_0 .. j_1 - 1

online = Clause(
    id="softmax.online",
    title="Online softmax",
    statement=(
        "Keys may be processed block by block, keeping per row a running max m, a running sum l of exp(x - m) and a "
        "running output o; a block of scores x_j with values v_j updates them to m' = max(m, max_j x_j), "
        "l' = l exp(m - m') + sum_j exp(x_j - m') and o' = o exp(m - m') + sum_j exp(x_j - m') v_j, and after the last "
        "block o / l = softmax(x) V: the shift cancels for any m, so the result does not depend on the blocks."
    ),
    expr=sympy.Eq(sympy.Symbol("l'"), sympy.Symbol("l") * sympy.exp(_m - _m_new)
                  + sympy.Sum(sympy.exp(x[j] - _m_new), (j, _block[0], _block[1] - 1))),
    derivation=_online(),
    section=SECTION[0],
    symbols={"m": "running max of the row's scores", "l": "running sum of exp(x - m)",
             "o": "running sum of exp(x - m) v", "m'": "the max after the block", "j_0, j_1": "the block's keys"},
)

CLAUSES = (definition, rows_sum_to_one, shift_invariance, stable, jacobian, online)
