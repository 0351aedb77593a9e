"""The notation of the spec: the paper's symbols as sympy objects, shared by every section.

Sizes: ``L`` query rows, ``S`` key/value rows, ``n`` rows of an input ``X``, ``d_model`` the model
width, ``d_k`` the query/key width (``E`` in the shape clause), ``d_v`` the value width (``E_v``),
``h`` the number of heads.

Indices: ``i`` a query row, ``j`` and ``k`` key rows, ``e`` a query/key feature, ``c`` a value
feature, ``t`` a row of an input, ``r`` a model feature.

Matrices: ``Q (L, d_k)``, ``K (S, d_k)``, ``V (S, d_v)``, the additive mask ``M (L, S)``, the scores
``A (L, S)``, the attention weights ``P (L, S)`` and the output ``O (L, d_v)``.

Three matrix-valued heads stand for operations sympy has no name for: :class:`Softmax` (row-wise
softmax), :class:`Attention` (scaled dot-product attention) and :class:`Concat` (concatenation along
the feature axis). :class:`Maximum` and :class:`Minimum` are reductions over a bound index.
"""

from __future__ import annotations

import sympy
from sympy.matrices.expressions.matexpr import MatrixExpr

# Sizes.
L, S, n = sympy.symbols("L S n", integer=True, positive=True)
d_model, d_k, d_v, h = sympy.symbols("d_model d_k d_v h", integer=True, positive=True)
E, E_v = sympy.symbols("E E_v", integer=True, positive=True)

# Indices.
i, j, k, e, c, t, r = sympy.symbols("i j k e c t r", integer=True, nonnegative=True)

# The scale of the scores.
s = sympy.Symbol("s", positive=True)

# The matrices of scaled dot-product attention.
Q = sympy.MatrixSymbol("Q", L, d_k)
K = sympy.MatrixSymbol("K", S, d_k)
V = sympy.MatrixSymbol("V", S, d_v)
M = sympy.MatrixSymbol("M", L, S)
A = sympy.MatrixSymbol("A", L, S)
P = sympy.MatrixSymbol("P", L, S)
O = sympy.MatrixSymbol("O", L, d_v)


class Softmax(MatrixExpr):
    """``softmax(X)``: the softmax of each row of ``X`` (clause ``softmax.definition``)."""

    def __new__(cls, arg):
        return super().__new__(cls, sympy.sympify(arg))

    @property
    def shape(self):
        return self.args[0].shape

    def _latex(self, printer):
        return r"\operatorname{softmax}\left(%s\right)" % printer._print(self.args[0])


class Attention(MatrixExpr):
    """``Attention(query, key, value)``: scaled dot-product attention, ``(L, E_v)`` (clause ``attention.sdpa``)."""

    def __new__(cls, query, key, value):
        return super().__new__(cls, *(sympy.sympify(a) for a in (query, key, value)))

    @property
    def shape(self):
        return (self.args[0].shape[0], self.args[2].shape[1])

    def _latex(self, printer):
        return r"\operatorname{Attention}\left(%s\right)" % ", ".join(printer._print(a) for a in self.args)


class Concat(MatrixExpr):
    """``Concat(X_1, ..., X_h)``: the blocks side by side along the feature (column) axis."""

    def __new__(cls, *blocks):
        return super().__new__(cls, *(sympy.sympify(b) for b in blocks))

    @property
    def shape(self):
        return (self.args[0].shape[0], sympy.Add(*(b.shape[1] for b in self.args)))

    def _latex(self, printer):
        return r"\operatorname{Concat}\left(%s\right)" % ", ".join(printer._print(a) for a in self.args)


def _grouped(body, printer) -> str:
    """The LaTeX of a reduction's body, in parentheses when it is a sum or a product."""
    text = printer._print(body)
    return r"\left(%s\right)" % text if isinstance(body, (sympy.Add, sympy.Mul)) else text


class Maximum(sympy.Function):
    """``Maximum(x, k)``: the largest value of ``x`` over the bound index ``k``."""

    nargs = 2

    def _latex(self, printer):
        body, index = self.args
        return r"\max_{%s} %s" % (printer._print(index), _grouped(body, printer))


class Minimum(sympy.Function):
    """``Minimum(x, k)``: the smallest value of ``x`` over the bound index ``k``."""

    nargs = 2

    def _latex(self, printer):
        body, index = self.args
        return r"\min_{%s} %s" % (printer._print(index), _grouped(body, printer))

