"""Section "alibi": attention with linear biases (ALiBi, Press et al. 2022), a variant of the sdpa contract.

With ``alibi_slopes`` (one slope ``m_h`` per query head, ``(H_q,)``, or per batch entry and head,
``(B, H_q)``) the score of query ``i`` and key ``j`` in head ``h`` gets the bias
``-m_h |i + o - j|``, ``o`` the alignment offset (0 top-left, ``S - L`` bottom-right): 0 at the
query's own position, falling linearly with the distance. It is added to the capped scores, with
the float mask, before the keep-masks, so ALiBi is a float mask of those values. The slopes the
paper gives ``n`` heads, ``n`` a power of 2, are the geometric series ``2^(-8 (h + 1) / n)``. The
classic mistakes: the sign, the per-row form ``+m_h j`` without a causal mask, the slopes
reversed across heads, and the offset taken top-left where the backend aligns bottom-right.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import relation, same_matrix
from .clause import Clause, Derivation, Step
from .notation import A, M, i, j

SECTION = ("alibi", "ALiBi linear biases")
PAGE = "alibi"  # the docs page that renders the section

m = sympy.Symbol("m_h", positive=True)  # a slope; the clauses allow any real, the paper's are positive
head = sympy.Symbol("h", integer=True, nonnegative=True)
heads = sympy.Symbol("n", integer=True, positive=True)
o = sympy.Symbol("o", integer=True)
d = sympy.Symbol("d", integer=True, nonnegative=True)
x = sympy.MatrixSymbol("x", A.shape[0], A.shape[1])  # the capped scores, (L, S)
bias = sympy.Function("b")

_SYMBOLS = {"m_h": "the slope of query head h", "h": "a query head, 0 .. n - 1", "n": "the number of query heads",
            "o": "the alignment offset: 0 top-left, S - L bottom-right", "d": "a distance |i + o - j| >= 0",
            "x": "the capped scores, (L, S), before biases and masks", "b(i, j)": "the ALiBi bias of head h"}


def bias_matrix(rows: int, keys: int, offset: int, slope: sympy.Expr) -> sympy.ImmutableMatrix:
    """The bias ``(rows, keys)`` of one head: ``-slope |i + offset - j|``."""
    return sympy.ImmutableMatrix([[-slope * abs(a + offset - b) for b in range(keys)] for a in range(rows)])


def power_of_two_slopes(count: int) -> list[sympy.Expr]:
    """``2^(-8 (h + 1) / count)`` for ``h = 0 .. count - 1``, exactly."""
    return [sympy.Integer(2) ** sympy.Rational(-8 * (h + 1), count) for h in range(count)]


def slopes(count: int) -> list[sympy.Expr]:
    """The paper's slopes for ``count >= 1`` heads, exactly (clause ``alibi.slopes``).

    A power of 2 takes :func:`power_of_two_slopes`; otherwise the closest lower power of 2, ``p``,
    takes its ``p`` slopes and the other ``count - p`` heads the first, third, fifth, ... slopes of
    the ``2p``-head series, ``2^(-4 (2k + 1) / p)``, which fall between those of ``p``.
    """
    p = 1 << (count.bit_length() - 1)  # the closest power of 2 at most count
    if p == count:
        return power_of_two_slopes(count)
    return power_of_two_slopes(p) + power_of_two_slopes(2 * p)[0::2][:count - p]


formula = Clause(
    id="alibi.formula",
    title="ALiBi adds -m_h |i + o - j| to the capped score",
    statement=(
        "With alibi_slopes, (H_q,) or (B, H_q), query head h adds b_ij = -m_h |i + o - j| to its capped score x_ij, "
        "o the alignment offset (0 top-left, S - L bottom-right): 0 at the query's own position j = i + o, m_h less "
        "per position away on either side. It comes after the cap and with the float mask, before the keep-masks "
        "(bool, causal, window, key lengths), so a masked key stays masked. Per-batch slopes line up from the right: "
        "B is the batch axis just before the head axis -3."
    ),
    expr=sympy.Eq(bias(i, j), -m * sympy.Abs(i + o - j)),
    derivation=Derivation((
        Step("L = 3, S = 5 bottom-right (o = 2), m_h = 1/2: each row is 0 at key i + 2",
             bias_matrix(3, 5, 2, sympy.Rational(1, 2)),
             sympy.ImmutableMatrix([[-1, -sympy.Rational(1, 2), 0, -sympy.Rational(1, 2), -1],
                                    [-sympy.Rational(3, 2), -1, -sympy.Rational(1, 2), 0, -sympy.Rational(1, 2)],
                                    [-2, -sympy.Rational(3, 2), -1, -sympy.Rational(1, 2), 0]]), check=same_matrix),
        Step("the same top-left (o = 0): the bias is 0 on the diagonal j = i instead",
             bias_matrix(3, 5, 0, sympy.Rational(1, 2)).diagonal(), sympy.zeros(1, 3), check=same_matrix),
        Step("the bias is symmetric about the query: keys d before and d after get the same",
             -m * sympy.Abs(i + o - (i + o - d)) - (-m * sympy.Abs(i + o - (i + o + d))), sympy.Integer(0)),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _ratio() -> Step:
    term = sympy.Integer(2) ** (-8 * (head + 1) / heads)
    following = term.subs(head, head + 1)
    return Step("the slopes are a geometric series: each is 2^(-8/n) times the one before",
                sympy.powsimp(following / term), sympy.Integer(2) ** (-8 / heads))


def _between() -> Step:
    k = sympy.Symbol("k", integer=True, nonnegative=True)
    p = sympy.Symbol("p", integer=True, positive=True)
    extra = sympy.Integer(2) ** (-8 * (2 * k + 1) / (2 * p))  # slope 2k of the 2p-head series
    low, high = sympy.Integer(2) ** (-8 * k / p), sympy.Integer(2) ** (-8 * (k + 1) / p)
    return Step("the extra heads' slopes 2^(-8 (2k + 1) / (2p)) are the geometric means of 2^(-8k/p) and "
                "2^(-8 (k + 1)/p): they fall between the slopes of p heads",
                sympy.powsimp(extra ** 2 / (low * high)), sympy.Integer(1))


slopes_clause = Clause(
    id="alibi.slopes",
    title="The slopes of n heads are 2^(-8 (h + 1) / n)",
    statement=(
        "For n heads, n a power of 2, head h = 0 .. n - 1 gets m_h = 2^(-8 (h + 1) / n): a geometric series from "
        "2^(-8/n) down to 2^(-8) (n = 8: 1/2, 1/4, ..., 1/256). For other n, the closest power of 2 below, p, gives "
        "its p slopes to the first p heads and the remaining n - p heads take the first, third, fifth, ... slopes of "
        "the 2p-head series, 2^(-4 (2k + 1) / p) for k = 0 .. n - p - 1 (the original ALiBi code's rule)."
    ),
    expr=sympy.Eq(m, sympy.Integer(2) ** (-8 * (head + 1) / heads)),
    derivation=Derivation((
        _ratio(),
        Step("n = 8: the slopes are 1/2, 1/4, ..., 1/256", sympy.ImmutableMatrix([slopes(8)]),
             sympy.ImmutableMatrix([[sympy.Rational(1, 2 ** (h + 1)) for h in range(8)]]), check=same_matrix),
        Step("n = 12: the 8 slopes of p = 8, then 2^(-1/2), 2^(-3/2), 2^(-5/2), 2^(-7/2) from 16 heads",
             sympy.ImmutableMatrix([slopes(12)]),
             sympy.ImmutableMatrix([[sympy.Rational(1, 2 ** (h + 1)) for h in range(8)]
                                    + [sympy.Integer(2) ** sympy.Rational(-(2 * k + 1), 2) for k in range(4)]]),
             check=same_matrix),
        _between(),
    )),
    section=SECTION[0],
    symbols={**_SYMBOLS, "k": "an extra head, 0 .. n - p - 1", "p": "the closest power of 2 at most n"},
)


def _float_mask_derivation() -> Derivation:
    scores = symbolic.matrix("x", 2, 3, real=True)
    slope = sympy.Rational(1, 4)
    biases = bias_matrix(2, 3, 1, slope)  # bottom-right, L = 2, S = 3
    mask = symbolic.matrix("M", 2, 3, real=True)
    return Derivation((
        Step("L = 2, S = 3 bottom-right, m_h = 1/4: the scores with ALiBi and a float mask M are those with the float "
             "mask M + B alone", (scores + biases) + mask, scores + (mask + biases), check=same_matrix),
        Step("so are their weights", symbolic.softmax_rows(scores + biases),
             symbolic.softmax_rows(scores + sympy.ImmutableMatrix([[-sympy.Rational(1, 4), 0, -sympy.Rational(1, 4)],
                                                                   [-sympy.Rational(1, 2), -sympy.Rational(1, 4), 0]])),
             check=same_matrix),
    ))


float_mask = Clause(
    id="alibi.float-mask",
    title="ALiBi is the float mask -m_h |i + o - j|",
    statement=(
        "A call with alibi_slopes gives the output of the same call without them and with the float mask "
        "B_hij = -m_h |i + o - j| added to its own float mask (or, with a bool mask, -inf at the keys it drops): the "
        "bias is one more additive term of the scores, nothing else."
    ),
    expr=sympy.Eq(sympy.Function("score")(i, j), x[i, j] + bias(i, j) + M[i, j]),
    derivation=_float_mask_derivation(),
    section=SECTION[0],
    symbols={**_SYMBOLS, "M": "the float mask, (L, S)"},
)


def _per_row_derivation() -> Derivation:
    y0, y1 = sympy.symbols("y_0 y_1", real=True)
    a, b = sympy.symbols("a b", integer=True, nonnegative=True)  # two keys a, b <= i + o
    causal = symbolic.softmax([y0 - m * (i + o - a), y1 - m * (i + o - b)])
    per_row = symbolic.softmax([y0 + m * a, y1 + m * b])
    both_sides = bias_matrix(1, 3, 1, m)  # L = 1, S = 3, o = 1: keys on both sides of the query
    per_row_both = sympy.ImmutableMatrix([[m * key for key in range(3)]])
    return Derivation((
        Step("for a key at or before the query (j = i + o - d, d >= 0) the bias is m_h j minus a constant of the row",
             -m * sympy.Abs(i + o - (i + o - d)), m * (i + o - d) - m * (i + o)),
        Step("so under causal masking the two forms give the same weights (softmax.shift-invariance)",
             causal[0], per_row[0]),
        Step("without it they differ: L = 1, S = 3, o = 1, the key after the query gets -m_h from ALiBi and +m_h "
             "(2 m_h more than the key before) from the per-row form",
             (per_row_both - both_sides)[0, 2] - (per_row_both - both_sides)[0, 0], 2 * m),
    ))


per_row_form = Clause(
    id="alibi.per-row-form",
    title="The per-row form m_h j is ALiBi only under causal masking",
    statement=(
        "Where every kept key sits at or before the query (j <= i + o, as under is_causal or a window (left, 0)), "
        "-m_h |i + o - j| = m_h j - m_h (i + o), and a constant of the row does not change the weights: the per-row "
        "form +m_h j, as some code bases add it, gives the same output. Without a causal mask the keys after the query "
        "get +m_h (j - i - o) instead of -m_h (j - i - o): the forms differ, and the per-row form is a bug there."
    ),
    expr=sympy.Implies(j <= i + o, sympy.Eq(-m * sympy.Abs(i + o - j), m * j - m * (i + o))),
    derivation=_per_row_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


head_order = Clause(
    id="alibi.head-order",
    title="Slope h goes with query head h",
    statement=(
        "alibi_slopes[..., h] is the slope of query head h on axis -3 (with grouped-query attention, the query's "
        "heads, not the key/value heads), so permuting the heads of query, key, value, mask and slopes together "
        "permutes the output's heads alike. The paper's slopes decrease with h, from 2^(-8/n) to 2^(-8): reversed, "
        "the first head gets the smallest."
    ),
    expr=sympy.Eq(sympy.Function("O")(head), sympy.Function("Attention")(head, m)),
    derivation=Derivation((
        Step("the slopes decrease: log2(m_(h+1) / m_h) = -8/n < 0", sympy.Lt(-8 / heads, 0, evaluate=False),
             sympy.true, check=relation),
        Step("n = 8 reversed gives head 0 the slope 1/256 instead of 1/2", slopes(8)[::-1][0], sympy.Rational(1, 256)),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)

CLAUSES = (formula, slopes_clause, float_mask, per_row_form, head_order)
