"""Section "projections": the query, key and value are linear maps of the inputs.

``Q = X W_Q + b_Q``, ``K = X W_K + b_K``, ``V = X W_V + b_V``, the bias row added to every row:
``Q_te = sum_r X_tr (W_Q)_re + (b_Q)_e``. The queries may come from another input than the
keys and values (clause ``mha.cross-attention``); each projection uses the ``X`` it is given.
"""

from __future__ import annotations

import sympy
from sympy.matrices.expressions.matexpr import MatrixElement

from .checks import evaluated
from .clause import Clause, Derivation, Step
from .notation import c, d_k, d_model, d_v, e, n, r, t

SECTION = ("projections", "Projections")
PAGE = "attention"  # the docs page that renders the section

X = sympy.MatrixSymbol("X", n, d_model)


def _projection(name: str, width: sympy.Symbol, column: sympy.Symbol, rows_text: str) -> Clause:
    letter = name[0].upper()
    weight = sympy.MatrixSymbol(f"W_{letter}", d_model, width)
    bias = sympy.IndexedBase(f"b_{letter}")
    result = sympy.MatrixSymbol(letter, n, width)
    entry = sympy.Sum(X[t, r] * weight[r, column], (r, 0, d_model - 1)) + bias[column]
    matrix_form = MatrixElement(X * weight, t, column) + bias[column]
    return Clause(
        id=f"projection.{name}",
        title=f"{name.capitalize()} projection",
        statement=(
            f"{letter} = X W_{letter} + b_{letter} with X (n, d_model), W_{letter} (d_model, {rows_text}) and "
            f"b_{letter} ({rows_text},) added to every row: {letter}_t{column} = sum_r X_tr (W_{letter})_r{column} "
            f"+ (b_{letter})_{column} for 0 <= t < n, 0 <= {column} < {rows_text}."
        ),
        expr=sympy.Eq(result[t, column], entry),
        derivation=Derivation((
            Step(f"the entry (t, {column}) of the matrix product X W_{letter} is the sum over r",
                 matrix_form, entry, check=evaluated),
        )),
        section=SECTION[0],
        symbols={
            "X": "input, (n, d_model)",
            f"W_{letter}": f"weight, (d_model, {rows_text})",
            f"b_{letter}": f"bias, ({rows_text},)",
            letter: f"{name}, (n, {rows_text})",
        },
    )


CLAUSES = (
    _projection("query", d_k, e, "d_k"),
    _projection("key", d_k, e, "d_k"),
    _projection("value", d_v, c, "d_v"),
)
