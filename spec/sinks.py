"""Section "sinks": attention sinks, a learned logit per query head in the softmax's denominator.

With ``sinks`` (one finite number ``sink_h`` per query head, ``(H_q,)``) the softmax of a row of
head ``h`` gets one more term in its denominator, ``exp(sink_h)``, that belongs to no key and has
no value: the weights of the kept keys sum to ``1 - p_sink < 1``, the rest of the mass going
nowhere. It is the softmax over the keys and one extra key whose score is ``sink_h`` and whose
value row is 0. A row that keeps no key has the denominator ``exp(sink_h)`` alone and gives 0: with
a sink the fully-masked-row convention does not apply. The classic mistakes: the sink ignored, the
sink added as a key with a value row, NaN on a fully masked row, and the sinks read in the wrong
head order.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import evaluated, relation, same_matrix
from .clause import Clause, Derivation, Step
from .notation import A, O, P, S, c, i, j, k

SECTION = ("sinks", "Attention sinks")
PAGE = "sinks"  # the docs page that renders the section

sink = sympy.Symbol("sink_h", real=True)
m = sympy.Symbol("m_i", real=True)
x = sympy.MatrixSymbol("x", A.shape[0], A.shape[1])  # the scores after every bias and mask, (L, S)
x0, x1, x2 = sympy.symbols("x_0 x_1 x_2", real=True)  # a row of three kept scores
head = sympy.Symbol("h", integer=True, nonnegative=True)

_SYMBOLS = {"sink_h": "the sink of query head h, a finite real number",
            "m_i": "the row max over the kept scores and the sink",
            "x": "the scores, (L, S), after the cap, the biases and the masks (-inf where a key is dropped)"}


def weights(row: list[sympy.Expr], sink_logit: sympy.Expr, shift: sympy.Expr = 0) -> list[sympy.Expr]:
    """``exp(x_j - m) / (exp(sink - m) + sum_k exp(x_k - m))`` for each entry of ``row``."""
    denominator = sympy.exp(sink_logit - shift) + sympy.Add(*(sympy.exp(entry - shift) for entry in row))
    return [sympy.exp(entry - shift) / denominator for entry in row]


def _sum_of(row: list[sympy.Expr]) -> sympy.Expr:
    return sympy.Add(*row)


_denominator = sympy.exp(sink - m) + sympy.Sum(sympy.exp(x[i, k] - m), (k, 0, S - 1))


def _formula_derivation() -> Derivation:
    row = [x0, x1, x2]
    extended = symbolic.softmax(row + [sink])  # the sink as a fourth key
    value = symbolic.matrix("v", 3, 1, real=True)
    with_zero_value = sympy.ImmutableMatrix([extended]) * value.col_join(sympy.zeros(1, 1))
    return Derivation((
        Step("the shift m cancels: any constant gives the same weights, so the max over the row and the sink is only "
             "for stability", weights(row, sink, m)[0], weights(row, sink)[0]),
        Step("the weight of a key is its softmax weight among the keys and one more entry, the sink", weights(row, sink)[0],
             extended[0]),
        Step("so the output is softmax([x, sink_h]) times V with a zero row appended for the sink",
             sympy.ImmutableMatrix([weights(row, sink)]) * value, with_zero_value, check=same_matrix),
    ))


formula = Clause(
    id="sinks.formula",
    title="The sink is one more term of the softmax's denominator",
    statement=(
        "With sinks, shape (H_q,), a row i of query head h has weights p_ij = exp(x_ij - m_i) / (exp(sink_h - m_i) + "
        "sum_k exp(x_ik - m_i)) over its kept keys (0 for a dropped key), m_i the max over the kept scores and sink_h, "
        "and output O_i = sum_j p_ij V_j: the softmax over the keys and the sink, the sink having no value. It acts "
        "after every bias and mask, in the softmax, and sink_h is finite."
    ),
    expr=sympy.Eq(P[i, j], sympy.exp(x[i, j] - m) / _denominator),
    derivation=_formula_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _mass() -> sympy.Expr:
    return sympy.exp(sink) / (sympy.exp(sink) + sympy.exp(x0) + sympy.exp(x1) + sympy.exp(x2))


mass = Clause(
    id="sinks.mass",
    title="The weights of a row sum to 1 - p_sink < 1",
    statement=(
        "The weights of a row sum to 1 - p_sink, p_sink = exp(sink_h - m_i) / (exp(sink_h - m_i) + sum_k exp(x_ik - "
        "m_i)) > 0 the sink's share: with every value 1 the output is 1 - p_sink, not 1. The more the sink rises above "
        "the scores, the less mass the keys keep."
    ),
    expr=sympy.Eq(sympy.Sum(P[i, j], (j, 0, S - 1)), 1 - sympy.exp(sink - m) / _denominator),
    derivation=Derivation((
        Step("S = 3: the weights sum to one minus the sink's share", _sum_of(weights([x0, x1, x2], sink)), 1 - _mass()),
        Step("the sink's share is positive, so the sum is below 1", sympy.Gt(_mass(), 0, evaluate=False), sympy.true,
             check=relation),
        Step("and it grows with the sink: its derivative exp(sink) sum_k exp(x_k) / (...)^2 is positive",
             sympy.Gt(sympy.diff(_mass(), sink), 0, evaluate=False), sympy.true, check=relation),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


empty_row = Clause(
    id="sinks.empty-row",
    title="With a sink, a row that keeps no key gives 0",
    statement=(
        "A row with every key dropped has m_i = sink_h and the denominator exp(0) = 1 > 0: its weights are all 0 and its "
        "output is exactly 0, whatever the backend's convention for a fully masked row (mask.fully-masked-row, which "
        "applies to rows without a sink: 0/0). Not NaN, not the mean of the values."
    ),
    expr=sympy.Implies(sympy.Eq(x[i, j], -sympy.oo), sympy.Eq(O[i, c], 0)),
    derivation=Derivation((
        Step("S = 3, every score -oo: each weight is exp(-oo) / (exp(sink_h - sink_h) + 3 exp(-oo)) = 0",
             sympy.ImmutableMatrix([weights([-sympy.oo] * 3, sink, sink)]), sympy.zeros(1, 3), check=same_matrix),
        Step("so the output is 0 for any values",
             (sympy.ImmutableMatrix([weights([-sympy.oo] * 3, sink, sink)]) * symbolic.matrix("v", 3, 1, real=True))[0],
             sympy.Integer(0)),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


limit = Clause(
    id="sinks.limit",
    title="A sink at -oo is no sink; a sink at +oo takes all the mass",
    statement=(
        "As sink_h -> -oo the weights tend to the plain softmax of the kept scores (softmax.definition), so a sink far "
        "below the scores changes nothing; as sink_h -> +oo every weight tends to 0, and so does the output."
    ),
    expr=sympy.Eq(sympy.Limit(sympy.exp(x[i, j]) / (sympy.exp(sink) + sympy.Sum(sympy.exp(x[i, k]), (k, 0, S - 1))),
                              sink, -sympy.oo),
                  sympy.exp(x[i, j]) / sympy.Sum(sympy.exp(x[i, k]), (k, 0, S - 1))),
    derivation=Derivation((
        Step("S = 2: as sink_h -> -oo the weight of key 0 tends to its softmax weight",
             sympy.Limit(weights([x0, x1], sink)[0], sink, -sympy.oo), symbolic.softmax([x0, x1])[0], check=evaluated),
        Step("as sink_h -> +oo it tends to 0", sympy.Limit(weights([x0, x1], sink)[0], sink, sympy.oo),
             sympy.Integer(0), check=evaluated),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _head_order_derivation() -> Derivation:
    sinks = sympy.symbols("sink_0 sink_1", real=True)
    first, second = (_sum_of(weights([x0, x1], value)) for value in sinks)
    return Derivation((
        Step("two query heads with the same scores (grouped-query heads sharing a key/value head, or equal queries) "
             "keep different masses when their sinks differ: the masses' difference is",
             first - second,
             (sympy.exp(sinks[1]) - sympy.exp(sinks[0])) * (sympy.exp(x0) + sympy.exp(x1))
             / ((sympy.exp(sinks[0]) + sympy.exp(x0) + sympy.exp(x1)) * (sympy.exp(sinks[1]) + sympy.exp(x0)
                                                                          + sympy.exp(x1)))),
    ))


head_order = Clause(
    id="sinks.head-order",
    title="Sink h goes with query head h",
    statement=(
        "sinks[h] is the sink of query head h on axis -3 (with grouped-query attention, the query's heads, not the "
        "key/value heads), so permuting the heads of query, key, value, mask and sinks together permutes the output's "
        "heads alike; sinks reversed, or indexed by the key/value head, give another head's mass."
    ),
    expr=sympy.Eq(sympy.Function("O")(head), sympy.Function("Attention")(head, sympy.Symbol("sinks[h]"))),
    derivation=_head_order_derivation(),
    section=SECTION[0],
    symbols={**_SYMBOLS, "h": "a query head, 0 .. H_q - 1"},
)

CLAUSES = (formula, mass, empty_row, limit, head_order)
