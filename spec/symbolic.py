"""Attention written out on small explicit sympy matrices, for the derivations to check.

Every entry is a sympy expression in named symbols; the functions follow the clauses' formulas
term by term (softmax by rows, weighted sum, split / concat of heads) and nothing else.
An additive mask entry ``-oo`` makes its exponential exactly 0, as clause ``mask.bool`` says.
"""

from __future__ import annotations

import sympy


def matrix(name: str, rows: int, columns: int, **assumptions) -> sympy.ImmutableMatrix:
    """A ``rows x columns`` matrix of distinct symbols ``name_{a b}``."""
    return sympy.ImmutableMatrix(
        rows, columns, lambda a, b: sympy.Symbol(f"{name}_{{{a}{b}}}", **assumptions)
    )


def softmax(x: list[sympy.Expr]) -> list[sympy.Expr]:
    """``p_j = exp(x_j) / sum_k exp(x_k)`` (clause ``softmax.definition``)."""
    exponentials = [sympy.exp(entry) for entry in x]
    total = sympy.Add(*exponentials)
    return [value / total for value in exponentials]


def softmax_rows(scores: sympy.ImmutableMatrix) -> sympy.ImmutableMatrix:
    """The softmax of each row of ``scores``."""
    rows = [softmax(list(scores.row(a))) for a in range(scores.rows)]
    return sympy.ImmutableMatrix(rows)


def sdpa(
    query: sympy.ImmutableMatrix,
    key: sympy.ImmutableMatrix,
    value: sympy.ImmutableMatrix,
    mask: sympy.ImmutableMatrix | None = None,
    scale: sympy.Expr | None = None,
) -> sympy.ImmutableMatrix:
    """``softmax(s Q K^T + M) V`` with ``s = 1/sqrt(d_k)`` unless ``scale`` is given (clause ``attention.sdpa``)."""
    s = 1 / sympy.sqrt(query.cols) if scale is None else scale
    scores = s * query * key.T
    if mask is not None:
        scores = scores + mask
    return softmax_rows(scores) * value


def split_heads(x: sympy.ImmutableMatrix, heads: int) -> list[sympy.ImmutableMatrix]:
    """Head ``a`` takes the columns ``a*w : (a+1)*w`` with ``w = columns / heads`` (clause ``mha.split``)."""
    width = x.cols // heads
    return [x[:, a * width:(a + 1) * width] for a in range(heads)]


def concat(blocks: list[sympy.ImmutableMatrix]) -> sympy.ImmutableMatrix:
    """The blocks side by side, in order, along the feature axis (clause ``mha.concat``)."""
    return sympy.ImmutableMatrix(sympy.Matrix.hstack(*blocks))


def multi_head(
    x_q: sympy.ImmutableMatrix,
    x_kv: sympy.ImmutableMatrix,
    w_q: sympy.ImmutableMatrix,
    w_k: sympy.ImmutableMatrix,
    w_v: sympy.ImmutableMatrix,
    w_o: sympy.ImmutableMatrix,
    b_o: sympy.ImmutableMatrix,
    heads: int,
) -> sympy.ImmutableMatrix:
    """``Concat(head_1, ..., head_h) W_O + b_O`` with ``head_a = Attention(x_q W_Q^(a), x_kv W_K^(a), x_kv W_V^(a))``.

    Each head's scale is ``1/sqrt(d_k)`` with ``d_k`` the per-head width (clause ``mha.head``);
    ``b_O`` is a row added to every output row.
    """
    queries = split_heads(x_q * w_q, heads)
    keys = split_heads(x_kv * w_k, heads)
    values = split_heads(x_kv * w_v, heads)
    heads_out = [sdpa(q, k, v) for q, k, v in zip(queries, keys, values)]
    ones = sympy.ones(x_q.rows, 1)
    return concat(heads_out) * w_o + ones * b_o
