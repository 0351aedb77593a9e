"""The gradients of multi-head attention (section "multihead", rendered on the gradients page).

``Y = H W_O + b_O`` with the heads ``H = Concat(head_1..head_h)`` and the projections ``Q = X_q W_Q + b_Q``,
``K = X_kv W_K + b_K``, ``V = X_kv W_V + b_V``. Every step is a product ``y = x W + b`` or the attention of the
heads, so the chain rule needs only the rule of the product (``dx = dy W^T``, ``dW = x^T dy``, ``db = 1^T dy``)
and the heads' gradients (section "gradients"). Each derivation lets sympy differentiate ``l = sum(G * (x W +
1 b))`` on explicit 2 x 2 matrices, ``G`` the upstream gradient of the product, and compares with the closed form.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import same_matrix
from .clause import Clause, Derivation, Step
from .gradients import gradient_step, sum_product
from .notation import L, S, d_k, d_model, d_v, h
from .multihead import SECTION, W_K, W_Q, W_V, X_kv, X_q

PAGE = "gradients"  # the docs page that renders these clauses of the section

Matrix = sympy.ImmutableMatrix
SIZE = 2

dY = sympy.MatrixSymbol("dY", L, d_model)
dQ = sympy.MatrixSymbol("dQ", L, h * d_k)
dK = sympy.MatrixSymbol("dK", S, h * d_k)
dV = sympy.MatrixSymbol("dV", S, h * d_v)
H = sympy.MatrixSymbol("H", L, h * d_v)
ones_L = sympy.MatrixSymbol(r"\mathbb{1}_L", L, 1)
ones_S = sympy.MatrixSymbol(r"\mathbb{1}_S", S, 1)

_SYMBOLS = {
    "dY": "the upstream gradient, of the output's shape (L, d_model)",
    "dQ, dK, dV": "the heads' gradients (clauses gradient.query, gradient.key, gradient.value) of dH = dY W_O^T "
                  "split into heads, concatenated in head order",
    "H": "the concatenated heads, (L, h d_v)",
}


def _product(name: str) -> tuple[Matrix, Matrix, Matrix, Matrix, sympy.Expr]:
    """``(x, W, b, G, l)``: explicit 2 x 2 ``x``, ``W``, ``G``, a 1 x 2 ``b`` and ``l = sum(G * (x W + 1 b))``."""
    x, w, upstream = (symbolic.matrix(f"{name}{part}", SIZE, SIZE, real=True) for part in "xwg")
    b = symbolic.matrix(f"{name}b", 1, SIZE, real=True)
    return x, w, b, upstream, sum_product(upstream, x * w + sympy.ones(SIZE, 1) * b)


def _inputs_derivation() -> Derivation:
    x, w_k, b_k, g_k, through_key = _product("k")
    _, w_v, b_v, g_v, _ = _product("v")
    through_value = sum_product(g_v, x * w_v + sympy.ones(SIZE, 1) * b_v)
    return Derivation((
        gradient_step("one product y = x W + b: sympy differentiates l = sum(G * y) by each entry of x: G W^T "
                      "(dX_q = dQ W_Q^T with G = dQ)", through_key, x, g_k * w_k.T),
        gradient_step("x feeding two products (X_kv into K and V): the sum of both, dK W_K^T + dV W_V^T",
                      through_key + through_value, x, g_k * w_k.T + g_v * w_v.T),
    ))


def _weights_derivation() -> Derivation:
    x, w, b, upstream, loss = _product("p")
    return Derivation((
        gradient_step("one product y = x W + b: sympy differentiates l = sum(G * y) by each entry of W: x^T G",
                      loss, w, x.T * upstream),
        gradient_step("the same by each entry of b: the column sums 1^T G (b is added to every row)", loss, b,
                      sympy.ones(1, SIZE) * upstream),
        Step("batch entries are rows too: x^T G over two entries of one row each is the sum of the entries' x_n^T G_n",
             x.T * upstream, x[0, :].T * upstream[0, :] + x[1, :].T * upstream[1, :], check=same_matrix),
    ))


inputs = Clause(
    id="mha.gradient.inputs",
    page=PAGE,  # with the other gradients
    title="Gradients of the inputs of multi-head attention",
    statement=(
        "Given dY, the gradient of the loss with respect to the output: dX_q = dQ W_Q^T and dX_kv = dK W_K^T + "
        "dV W_V^T, where (dQ, dK, dV) are the heads' gradients (clauses gradient.query, gradient.key, gradient.value) "
        "of dH = dY W_O^T split into heads, concatenated in head order; each argument gets its own partial (with "
        "x_kv = x_q the shared input's gradient is their sum). An implementation agrees with them within the bound "
        "of the backward carried through the projections (docs/error-model.md)."
    ),
    expr=sympy.And(sympy.Eq(sympy.MatrixSymbol("dX_q", L, d_model), dQ * W_Q.T),
                   sympy.Eq(sympy.MatrixSymbol("dX_kv", S, d_model), dK * W_K.T + dV * W_V.T)),
    derivation=_inputs_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)

weights = Clause(
    id="mha.gradient.weights",
    page=PAGE,
    title="Gradients of the projection weights and biases",
    statement=(
        "dW_O = H^T dY and db_O = 1^T dY; dW_Q = X_q^T dQ, dW_K = X_kv^T dK, dW_V = X_kv^T dV and db_Q, db_K, db_V the "
        "column sums of dQ, dK, dV; every sum over rows runs over the batch entries too. An implementation agrees "
        "with them within the bound of the backward carried through the projections (docs/error-model.md)."
    ),
    expr=sympy.And(sympy.Eq(sympy.MatrixSymbol("dW_O", h * d_v, d_model), H.T * dY),
                   sympy.Eq(sympy.MatrixSymbol("db_O", 1, d_model), ones_L.T * dY),
                   sympy.Eq(sympy.MatrixSymbol("dW_Q", d_model, h * d_k), X_q.T * dQ),
                   sympy.Eq(sympy.MatrixSymbol("dW_K", d_model, h * d_k), X_kv.T * dK),
                   sympy.Eq(sympy.MatrixSymbol("dW_V", d_model, h * d_v), X_kv.T * dV),
                   sympy.Eq(sympy.MatrixSymbol("db_V", 1, h * d_v), ones_S.T * dV)),
    derivation=_weights_derivation(),
    section=SECTION[0],
    symbols={**_SYMBOLS, r"\mathbb{1}_L": "a column of L ones (the sum over rows)"},
)

CLAUSES = (inputs, weights)
