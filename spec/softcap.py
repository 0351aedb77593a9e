"""Section "softcap": logit soft-capping (Gemma 2, Grok), a variant of the sdpa contract.

With ``softcap=c`` (``c > 0``) each score becomes ``x = c tanh(y / c)``, ``y = s q_i . k_j`` the scaled
dot product: after the scale, before any bias or mask. The cap keeps every score within
``(-c, c)``, and for scores small next to ``c`` it is the identity to first order. Masks and biases
come after it, so a masked key stays ``-inf``; capping after the mask (``-inf`` becomes ``-c``, a
finite score) or before the scale (``c tanh(q . k / c)`` times ``s``) are the classic mistakes.
"""

from __future__ import annotations

import sympy

from .checks import evaluated
from .clause import Clause, Derivation, Step
from .notation import A, K, M, Q, d_k, e, i, j, s

SECTION = ("softcap", "Logit soft-capping")
PAGE = "softcap"  # the docs page that renders the section

cap = sympy.Symbol("c", positive=True)
y = sympy.Symbol("y", real=True)
x = sympy.MatrixSymbol("x", A.shape[0], A.shape[1])  # the capped scores, (L, S)

_SYMBOLS = {"c": "the cap, a real number > 0", "y": "a scaled score s q_i . k_j",
            "x": "the capped scores, (L, S), before biases and masks"}
_dot = s * sympy.Sum(Q[i, e] * K[j, e], (e, 0, d_k - 1))


def capped(value: sympy.Expr) -> sympy.Expr:
    """``c tanh(value / c)``."""
    return cap * sympy.tanh(value / cap)


formula = Clause(
    id="softcap.formula",
    title="The capped score is c tanh(s q . k / c)",
    statement=(
        "With softcap=c, c > 0, the score of query i and key j is x_ij = c tanh(A_ij / c), A_ij = s sum_e Q_ie K_je the "
        "scaled dot product: the cap comes after the scale and before any bias (a float mask, ALiBi) or keep-mask "
        "(bool, causal, window, key lengths), which act on x as they act on A without a cap."
    ),
    expr=sympy.Eq(x[i, j], capped(_dot)),
    derivation=Derivation((
        Step("the cap is odd: a score and its negative are capped alike", capped(-y), -capped(y)),
        Step("capping twice with one c is not capping once: c tanh(tanh(y/c)) differs at y = c",
             (capped(capped(y)) - capped(y)).subs(y, cap), cap * (sympy.tanh(sympy.tanh(1)) - sympy.tanh(1))),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


bounded = Clause(
    id="softcap.bounded",
    title="A capped score lies within (-c, c)",
    statement=(
        "Every finite score is capped to -c < x_ij < c, whatever the size of q_i . k_j; so within a row the weights of "
        "two kept keys (without biases) differ by a factor below exp(2c): p_ij / p_ik = exp(x_ij - x_ik) < exp(2c)."
    ),
    expr=sympy.And(sympy.Lt(sympy.Abs(x[i, j]), cap), sympy.Lt(sympy.exp(x[i, j] - x[i, sympy.Symbol("k")]),
                                                                sympy.exp(2 * cap))),
    derivation=Derivation((
        Step("as y -> oo, c tanh(y / c) -> c", sympy.Limit(capped(y), y, sympy.oo), cap, check=evaluated),
        Step("as y -> -oo, c tanh(y / c) -> -c", sympy.Limit(capped(y), y, -sympy.oo), -cap, check=evaluated),
        Step("its derivative 1 - tanh^2(y / c) lies in (0, 1]: the cap never moves a score further than y",
             sympy.diff(capped(y), y), 1 - sympy.tanh(y / cap) ** 2),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _series() -> sympy.Expr:
    return sympy.series(capped(y), y, 0, 6).removeO()


small_scores = Clause(
    id="softcap.small-scores",
    title="For scores small next to c the cap is the identity to first order",
    statement=(
        "c tanh(y / c) = y - y^3 / (3 c^2) + O(y^5 / c^4): for |y| << c the capped score is the score, and a cap far "
        "above every score changes the output by a relative O((y / c)^2)."
    ),
    expr=sympy.Eq(capped(y), y - y ** 3 / (3 * cap ** 2) + sympy.O(y ** 5)),
    derivation=Derivation((
        Step("the Taylor series at y = 0, to the fifth order", _series(),
             y - y ** 3 / (3 * cap ** 2) + 2 * y ** 5 / (15 * cap ** 4)),
        Step("so the first-order term is y itself", sympy.diff(capped(y), y).subs(y, 0), sympy.Integer(1)),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


order = Clause(
    id="softcap.order",
    title="Masks and biases come after the cap",
    statement=(
        "The biases and masks act on the capped scores: x_ij + M_ij, and a masked key keeps the score -inf and the "
        "weight 0 exactly. Capping after the mask would turn -inf into -c (c tanh(-oo) = -c), a finite score: the "
        "masked key would take part with weight exp(-c - m_i) / ..."
    ),
    expr=sympy.Eq(sympy.Function("score")(i, j), capped(_dot) + M[i, j]),
    derivation=Derivation((
        Step("capping a masked score gives -c, not -inf", sympy.Limit(capped(y), y, -sympy.oo), -cap, check=evaluated),
        Step("so a cap after the mask leaves the masked key the weight exp(-c) / (exp(-c) + exp(x)) > 0, here at x = 0",
             sympy.exp(-cap) / (sympy.exp(-cap) + 1), 1 / (1 + sympy.exp(cap))),
    )),
    section=SECTION[0],
    symbols={**_SYMBOLS, "M": "the additive mask and biases, (L, S), -inf where a key is masked"},
)

CLAUSES = (formula, bounded, small_scores, order)
