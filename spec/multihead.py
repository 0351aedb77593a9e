"""Section "multihead": multi-head attention.

``MultiHead(x_q, x_kv) = Concat(head_1, ..., head_h) W_O + b_O`` with
``head_i = Attention(x_q W_Q^(i), x_kv W_K^(i), x_kv W_V^(i))``: the projections ``x W`` of width
``h d_k`` (``h d_v`` for the value) are split into ``h`` column blocks, each head runs scaled
dot-product attention with the scale ``1/sqrt(d_k)`` of its own width, and the heads are put back
side by side in order and projected by ``W_O``.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import same_matrix, same_shape
from .clause import Clause, Derivation, Step
from .notation import L, S, Attention, Concat, Softmax, c, d_k, d_model, d_v, h, r, t

SECTION = ("multihead", "Multi-head attention")
PAGE = "multihead"  # the docs page that renders the section

i = sympy.Symbol("i", integer=True, nonnegative=True)  # the head
q = sympy.Symbol("q", integer=True, nonnegative=True)  # a column of the concatenated heads

X_q = sympy.MatrixSymbol("X_q", L, d_model)
X_kv = sympy.MatrixSymbol("X_kv", S, d_model)
W_Q = sympy.MatrixSymbol("W_Q", d_model, h * d_k)
W_K = sympy.MatrixSymbol("W_K", d_model, h * d_k)
W_V = sympy.MatrixSymbol("W_V", d_model, h * d_v)
W_O = sympy.MatrixSymbol("W_O", h * d_v, d_model)
b_O = sympy.IndexedBase("b_O")
W_Q_i = sympy.MatrixSymbol("W_Q^{(i)}", d_model, d_k)
W_K_i = sympy.MatrixSymbol("W_K^{(i)}", d_model, d_k)
W_V_i = sympy.MatrixSymbol("W_V^{(i)}", d_model, d_v)
head_i = sympy.MatrixSymbol("head_i", L, d_v)
heads = sympy.IndexedBase("head")
C = sympy.MatrixSymbol("C", L, h * d_v)
MultiHead = sympy.MatrixSymbol("MultiHead", L, d_model)

_SYMBOLS = {
    "X_q": "query input, (L, d_model)",
    "X_kv": "key/value input, (S, d_model)",
    "W_Q, W_K": "(d_model, h d_k)",
    "W_V": "(d_model, h d_v)",
    "W_O": "(h d_v, d_model)",
    "b_O": "(d_model,)",
    "h": "num_heads",
    "d_k, d_v": "per-head widths",
}


def _split_derivation() -> Derivation:
    x = symbolic.matrix("x", 2, 4)
    weight = symbolic.matrix("w", 4, 4)
    blocks = symbolic.split_heads(x * weight, 2)
    return Derivation(tuple(
        Step(f"h = 2, d_k = 2: columns {a * 2}:{a * 2 + 2} of X W_Q are X times the same columns of W_Q (= X W_Q^({a}))",
             blocks[a], x * weight[:, a * 2:a * 2 + 2], check=same_matrix)
        for a in range(2)
    ))


split = Clause(
    id="mha.split",
    title="Splitting into heads",
    statement=(
        "Head i (0 <= i < h) takes columns i*d_k : (i+1)*d_k of the projected query and key and columns "
        "i*d_v : (i+1)*d_v of the projected value; so Q^(i) = X_q W_Q^(i) with W_Q^(i) the same columns of W_Q."
    ),
    expr=sympy.Eq(sympy.MatrixSymbol("Q^{(i)}", L, d_k), (X_q * W_Q)[:, i * d_k:(i + 1) * d_k], evaluate=False),
    derivation=_split_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _head_derivation() -> Derivation:
    x_q, x_kv = symbolic.matrix("x", 1, 4, real=True), symbolic.matrix("y", 2, 4, real=True)
    w_q, w_k, w_v = (symbolic.matrix(name, 4, 4, real=True) for name in ("a", "b", "w"))
    steps = []
    for a in range(2):
        block = slice(2 * a, 2 * a + 2)
        head_a = symbolic.sdpa(symbolic.split_heads(x_q * w_q, 2)[a], symbolic.split_heads(x_kv * w_k, 2)[a],
                               symbolic.split_heads(x_kv * w_v, 2)[a])
        steps.append(Step(
            f"d_model = 4, h = 2: head {a} is attention of X W^({a}) with scale 1/sqrt(d_model / h) = 1/sqrt(2)",
            head_a,
            symbolic.sdpa(x_q * w_q[:, block], x_kv * w_k[:, block], x_kv * w_v[:, block],
                          scale=1 / sympy.sqrt(sympy.Integer(4) / 2)),
            check=same_matrix,
        ))
    return Derivation(tuple(steps))


head = Clause(
    id="mha.head",
    title="One head",
    statement=(
        "head_i = Attention(X_q W_Q^(i), X_kv W_K^(i), X_kv W_V^(i)) with scale 1/sqrt(d_k), d_k the per-head width "
        "(d_model / h in the paper), not d_model; each head has its own softmax."
    ),
    expr=sympy.Eq(head_i, Attention(X_q * W_Q_i, X_kv * W_K_i, X_kv * W_V_i), evaluate=False),
    derivation=_head_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _concat_derivation() -> Derivation:
    blocks = [symbolic.matrix(f"h{a}", 2, 2) for a in range(3)]
    joined = symbolic.concat(blocks)
    by_rule = sympy.ImmutableMatrix(2, 6, lambda row, column: joined[row, column])
    by_head = sympy.ImmutableMatrix(2, 6, lambda row, column: blocks[column // 2][row, column % 2])
    return Derivation((
        Step("h = 3, d_v = 2: column i*d_v + c of the concatenation is column c of head i",
             by_rule, by_head, check=same_matrix),
    ))


concat = Clause(
    id="mha.concat",
    title="Concatenating the heads",
    statement=(
        "Concat(head_1, ..., head_h) puts the heads side by side in head order along the feature axis: "
        "C_t,(i*d_v + c) = (head_i)_tc for 0 <= i < h, 0 <= c < d_v; C is (L, h d_v)."
    ),
    expr=sympy.Eq(C[t, i * d_v + c], heads[i, t, c]),
    derivation=_concat_derivation(),
    section=SECTION[0],
    symbols={"C": "the concatenated heads, (L, h d_v)", "head": "head i, (L, d_v)"},
)

output_projection = Clause(
    id="mha.output-projection",
    title="Output projection",
    statement=(
        "MultiHead = Concat(head_1, ..., head_h) W_O + b_O with W_O (h d_v, d_model) and b_O added to every row: "
        "MultiHead_tr = sum_q C_tq (W_O)_qr + (b_O)_r; the output is (L, d_model)."
    ),
    expr=sympy.Eq(MultiHead[t, r], sympy.Sum(C[t, q] * W_O[q, r], (q, 0, h * d_v - 1)) + b_O[r]),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _block_sum_derivation() -> Derivation:
    steps = []
    for count, width in ((2, 2), (3, 1)):
        blocks = [symbolic.matrix(f"h{a}", 2, width) for a in range(count)]
        w_o = symbolic.matrix("w", count * width, 2)
        steps.append(Step(
            f"h = {count}, d_v = {width}, L = 2, d_model = 2: Concat W_O is the sum of head_i times the i-th row block of W_O",
            symbolic.concat(blocks) * w_o,
            sympy.ImmutableMatrix(sympy.Add(*(blocks[a] * w_o[a * width:(a + 1) * width, :] for a in range(count)))),
            check=same_matrix,
        ))
    return Derivation(tuple(steps))


concat_block_sum = Clause(
    id="mha.concat-block-sum",
    title="Concat then project is a sum over heads",
    statement=(
        "Concat(head_1, ..., head_h) W_O = sum_i head_i W_O^(i) with W_O^(i) = rows i*d_v : (i+1)*d_v of W_O: "
        "each head is projected by its own row block and the results are added."
    ),
    expr=sympy.Eq(
        sympy.Sum(C[t, q] * W_O[q, r], (q, 0, h * d_v - 1)),
        sympy.Sum(sympy.Sum(heads[i, t, c] * W_O[i * d_v + c, r], (c, 0, d_v - 1)), (i, 0, h - 1)),
    ),
    derivation=_block_sum_derivation(),
    section=SECTION[0],
    symbols={"W_O^(i)": "rows i*d_v : (i+1)*d_v of W_O, (d_v, d_model)"},
)


def _single_head_derivation() -> Derivation:
    x_q, x_kv = symbolic.matrix("x", 2, 2, real=True), symbolic.matrix("y", 2, 2, real=True)
    w_q, w_k, w_v, w_o = (symbolic.matrix(name, 2, 2, real=True) for name in ("a", "b", "w", "o"))
    b_o = symbolic.matrix("c", 1, 2, real=True)
    single = symbolic.sdpa(x_q * w_q, x_kv * w_k, x_kv * w_v, scale=1 / sympy.sqrt(2)) * w_o
    return Derivation((
        Step("L = S = d_model = 2, h = 1: multi-head attention is attention of the projections with d_k = d_model",
             symbolic.multi_head(x_q, x_kv, w_q, w_k, w_v, w_o, b_o, heads=1),
             single + sympy.ones(2, 1) * b_o, check=same_matrix),
    ))


ones_L = sympy.MatrixSymbol(r"\mathbb{1}", L, 1)

single_head = Clause(
    id="mha.single-head",
    title="One head is plain attention",
    statement=(
        "With h = 1, d_k = d_model and d_v = d_model (the paper's widths): MultiHead = Attention(X_q W_Q, X_kv W_K, X_kv W_V) "
        "W_O + b_O, single-head scaled dot-product attention with scale 1/sqrt(d_model) between the projections."
    ),
    expr=sympy.Eq(MultiHead, Attention(X_q * sympy.MatrixSymbol("W_Q", d_model, d_model),
                                       X_kv * sympy.MatrixSymbol("W_K", d_model, d_model),
                                       X_kv * sympy.MatrixSymbol("W_V", d_model, d_model))
                  * sympy.MatrixSymbol("W_O", d_model, d_model) + ones_L * sympy.MatrixSymbol("b_O", 1, d_model),
                  evaluate=False),
    derivation=_single_head_derivation(),
    section=SECTION[0],
    symbols={r"\mathbb{1}": "a column of L ones (b_O added to every row)"},
)


def _cross_attention_derivation() -> Derivation:
    two_heads = [Softmax(X_q * W_Q_i * (X_kv * W_K_i).T / sympy.sqrt(d_k)) * X_kv * W_V_i for _ in range(2)]
    projection = sympy.MatrixSymbol("W_O", 2 * d_v, d_model)
    x_q, x_kv = symbolic.matrix("x", 1, 2, real=True), symbolic.matrix("y", 3, 2, real=True)
    w_q, w_k, w_v, w_o = (symbolic.matrix(name, 2, 2, real=True) for name in ("a", "b", "w", "o"))
    b_o = symbolic.matrix("c", 1, 2, real=True)
    return Derivation((
        Step("shape algebra with h = 2: X_q (L, d_model) and X_kv (S, d_model) give (L, d_model)",
             Concat(*two_heads) * projection, sympy.Tuple(L, d_model), check=same_shape),
        Step("written out: one query row, three key/value rows, d_model = h = 2",
             symbolic.multi_head(x_q, x_kv, w_q, w_k, w_v, w_o, b_o, heads=2), sympy.Tuple(1, 2), check=same_shape),
    ))


cross_attention = Clause(
    id="mha.cross-attention",
    title="Cross-attention",
    statement=(
        "Queries are projected from x_q (L, d_model), keys and values from x_kv (S, d_model), L and S may differ; "
        "the output is (L, d_model); self-attention is the case x_q = x_kv."
    ),
    expr=sympy.Eq(sympy.Function("shape")(sympy.Function("MultiHead")(X_q, X_kv)), sympy.Tuple(L, d_model)),
    derivation=_cross_attention_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)

def multiply_adds(heads: sympy.Expr, width_k: sympy.Expr, width_v: sympy.Expr,
                  evaluate: bool = False) -> dict[str, sympy.Expr]:
    """Multiply-adds of each step of multi-head attention for one batch entry, by step name."""
    def product(*factors):
        return sympy.Mul(*factors, evaluate=evaluate)
    return {
        "projections": sympy.Add(product(L, d_model, heads, width_k), product(S, d_model, heads, width_k),
                                 product(S, d_model, heads, width_v), evaluate=evaluate),
        "scores": product(heads, L, S, width_k),
        "weighted sum": product(heads, L, S, width_v),
        "output projection": product(L, heads, width_v, d_model),
    }


def _cost_derivation() -> Derivation:
    narrow = multiply_adds(h, d_model / h, d_model / h)
    wide = multiply_adds(sympy.Integer(1), d_model, d_model, evaluate=True)
    steps = [Step(f"{name}: h heads of width d_model/h cost what one head of width d_model costs",
                  narrow[name], wide[name]) for name in narrow]
    steps.append(Step("the scores and the weighted sum together: 2 L S d_model, whatever h",
                      sympy.Add(narrow["scores"], narrow["weighted sum"], evaluate=False), 2 * L * S * d_model))
    return Derivation(tuple(steps))


cost = Clause(
    id="mha.cost",
    title="Many narrow heads cost one wide head",
    statement=(
        "With d_k = d_v = d_model / h, multi-head attention does as many multiply-adds as one head of width d_model: "
        "(L + 2 S) d_model^2 for the projections, 2 L S d_model for the scores and the weighted sum, L d_model^2 for "
        "the output projection; h changes how the work is split, not how much there is."
    ),
    expr=sympy.Eq(sympy.Add(*multiply_adds(h, d_model / h, d_model / h).values(), evaluate=False),
                  sympy.Add(*multiply_adds(sympy.Integer(1), d_model, d_model, evaluate=True).values()),
                  evaluate=False),
    derivation=_cost_derivation(),
    section=SECTION[0],
    symbols={"h": "num_heads", "d_model / h": "the head width d_k = d_v"},
)

CLAUSES = (split, head, concat, output_projection, concat_block_sum, single_head, cross_attention, cost)
