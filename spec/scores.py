"""Section "scores": the scaled dot products of queries and keys.

``A = s Q K^T``, ``A_ij = s sum_e Q_ie K_je``, with ``s = 1/sqrt(d_k)`` unless a scale is given;
the scale keeps the scores at unit variance when the entries of ``Q`` and ``K`` have unit variance.
"""

from __future__ import annotations

import sympy
import sympy.stats
from sympy.matrices.expressions.matexpr import MatrixElement

from .checks import Mean, by_distribution, by_moments, evaluated
from .clause import Clause, Derivation, Step
from .notation import A, K, Q, d_k, e, i, j, s

SECTION = ("scores", "Scores")
PAGE = "attention"  # the docs page that renders the section

sigma = sympy.Symbol("sigma", positive=True)
Var = sympy.Function("Var")
q, k = sympy.IndexedBase("q"), sympy.IndexedBase("k")

_dot_product = sympy.Sum(Q[i, e] * K[j, e], (e, 0, d_k - 1))

dot_product = Clause(
    id="scores.dot-product",
    title="Scaled dot-product scores",
    statement=(
        "A = s Q K^T: A_ij = s sum_e Q_ie K_je over the d_k features e, "
        "for query row 0 <= i < L and key row 0 <= j < S; A is (L, S)."
    ),
    expr=sympy.Eq(A[i, j], s * _dot_product),
    derivation=Derivation((
        Step("the entry (i, j) of the matrix product s Q K^T is s times the sum over features",
             MatrixElement(s * Q * K.T, i, j), s * _dot_product, check=evaluated),
    )),
    section=SECTION[0],
    symbols={"Q": "query, (L, d_k)", "K": "key, (S, d_k)", "s": "scale", "A": "scores, (L, S)"},
)

scale_default = Clause(
    id="scores.scale.default",
    title="Default scale",
    statement=(
        "Without an explicit scale, s = 1/sqrt(d_k) with d_k the width of a query/key row "
        "(the last axis of query; per head in multi-head attention, not d_model)."
    ),
    expr=sympy.Eq(s, 1 / sympy.sqrt(d_k)),
    section=SECTION[0],
    symbols={"s": "scale", "d_k": "query/key width"},
)

scale_explicit = Clause(
    id="scores.scale.explicit",
    title="Explicit scale",
    statement=(
        "When a scale sigma is given it replaces 1/sqrt(d_k) (it does not multiply it): "
        "A_ij = sigma sum_e Q_ie K_je."
    ),
    expr=sympy.Eq(A[i, j], sigma * _dot_product),
    section=SECTION[0],
    symbols={"sigma": "the given scale"},
)


def _variance_derivation() -> Derivation:
    normal_q = [sympy.stats.Normal(f"q_{index}", 0, 1) for index in range(2)]
    normal_k = [sympy.stats.Normal(f"k_{index}", 0, 1) for index in range(2)]
    normal_dot = sympy.Add(*(a * b for a, b in zip(normal_q, normal_k)))
    q_e, k_e, q_f, k_f = sympy.symbols("q_e k_e q_f k_f")
    four = sympy.Add(*(sympy.Symbol(f"q_{index}") * sympy.Symbol(f"k_{index}") for index in range(4)))
    scale_squared = sympy.Pow(1 / sympy.sqrt(d_k), 2, evaluate=False)
    return Derivation((
        Step("d_k = 2, q_e and k_e independent N(0, 1) (sympy.stats): Var(q.k) = d_k",
             sympy.stats.Variance(normal_dot), sympy.Integer(2), check=by_distribution),
        Step("d_k = 2, N(0, 1) entries: the scaled score has unit variance",
             sympy.stats.Variance(normal_dot / sympy.sqrt(2)), sympy.Integer(1), check=by_distribution),
        Step("any law with E[x] = 0, E[x^2] = 1: one term has Var(q_e k_e) = E[q_e^2] E[k_e^2] - (E[q_e] E[k_e])^2 = 1",
             Mean(q_e**2 * k_e**2) - Mean(q_e * k_e) ** 2, sympy.Integer(1), check=by_moments),
        Step("terms e != f are uncorrelated: Cov(q_e k_e, q_f k_f) = 0",
             Mean(q_e * k_e * q_f * k_f) - Mean(q_e * k_e) * Mean(q_f * k_f), sympy.Integer(0), check=by_moments),
        Step("so Var(q.k) is the sum of the d_k unit term variances",
             sympy.Sum(1, (e, 0, d_k - 1)), d_k, check=evaluated),
        Step("the same by expanding E[(q.k)^2] - E[q.k]^2 for d_k = 4",
             Mean(four**2) - Mean(four) ** 2, sympy.Integer(4), check=by_moments),
        Step("Var(s x) = s^2 Var(x): with s = 1/sqrt(d_k) the variance d_k becomes 1",
             sympy.Mul(scale_squared, d_k, evaluate=False), sympy.Integer(1)),
    ))


scale_variance = Clause(
    id="scores.scale.variance",
    title="Why 1/sqrt(d_k)",
    statement=(
        "If the entries of q and k are independent with mean 0 and variance 1, Var(q.k) = d_k, "
        "so Var(q.k / sqrt(d_k)) = 1: the default scale keeps the scores at unit variance for every d_k."
    ),
    expr=sympy.Eq(Var(sympy.Sum(q[e] * k[e], (e, 0, d_k - 1)) / sympy.sqrt(d_k)), 1),
    derivation=_variance_derivation(),
    section=SECTION[0],
    symbols={"q": "a query row, (d_k,)", "k": "a key row, (d_k,)"},
)

CLAUSES = (dot_product, scale_default, scale_explicit, scale_variance)
