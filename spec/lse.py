"""Section "lse": the log-sum-exp of each query row, returned with the output (``return_lse=True``).

The lse of query row ``i`` is the natural log of its softmax denominator: ``lse_i = log sum_j
exp(x_ij)`` over the kept keys, computed with the row max ``m_i`` as ``m_i + log sum_j exp(x_ij -
m_i)``, the two being one number. It is what a kernel keeps to rebuild the weights in its backward
pass (``p_ij = exp(x_ij - lse_i)``) and what split-KV (flash-decoding) kernels combine across blocks
of keys. A row with no kept key has the empty sum 0 and the lse ``-inf``. The classic mistakes: the
log in base 2 (kernels that compute ``exp2`` keep their sums in base 2), the scale folded in twice
(``lse`` of ``s x`` where ``x`` already carries ``s``), and the shift ``m_i`` left out.
"""

from __future__ import annotations

import sympy

from .checks import evaluated, relation, same_infinity
from .clause import Clause, Derivation, Step

SECTION = ("lse", "The log-sum-exp")
PAGE = "lse"  # the docs page that renders the section

x1, x2, x3, shift = sympy.symbols("x_1 x_2 x_3 m", real=True)
a, b = sympy.symbols("a b", real=True)
o_a, o_b = sympy.symbols("o_a o_b", real=True)
scale = sympy.Symbol("s", positive=True)
lse_i = sympy.Symbol("lse_i", real=True)
_t = sympy.Symbol("t", positive=True)
_sink = sympy.Symbol("s_h", real=True)
_ROW = (x1, x2, x3)  # a row of three kept scores

_SYMBOLS = {"x_ij": "the score of query i and key j, capped and biased, -inf where the key is dropped",
            "m_i": "the max of row i over its kept keys", "lse_i": "the log-sum-exp of row i (natural log)"}


def log_sum_exp(row, m=0) -> sympy.Expr:
    """``m + log sum_j exp(x_j - m)`` of the scores ``row``."""
    return m + sympy.log(sum(sympy.exp(value - m) for value in row))


definition = Clause(
    id="lse.definition",
    title="The lse is the natural log of the softmax denominator",
    statement=(
        "With return_lse=True the call returns (output, lse), lse of shape (..., H_q, L), the output's batch dims and "
        "L: lse_i = m_i + log sum_j exp(x_ij - m_i) = log sum_j exp(x_ij), the natural log, over the keys row i keeps "
        "(after the scale, the cap, the biases and every mask). It lies in [m_i, m_i + log n_i], n_i the kept keys."
    ),
    expr=sympy.Eq(lse_i, log_sum_exp(_ROW, shift)),
    derivation=Derivation((
        Step("any shift m gives the same number: m + log sum exp(x_j - m) = log sum exp(x_j)",
             sympy.expand_log(sympy.exp(log_sum_exp(_ROW, shift)), force=True),
             sympy.exp(log_sum_exp(_ROW)), check=evaluated),
        Step("with equal scores it is the score plus log n", log_sum_exp((x1, x1, x1)), x1 + sympy.log(3)),
        Step("the classic bug, log base 2, is lse / ln 2: off unless lse = 0",
             sympy.log(sum(sympy.exp(v) for v in _ROW), 2) - log_sum_exp(_ROW),
             log_sum_exp(_ROW) * (1 / sympy.log(2) - 1)),
        Step("the scale folded in twice gives log sum exp(s x_j), not log sum exp(x_j): at one key, s x_1 vs x_1",
             log_sum_exp((scale * x1,)) - log_sum_exp((x1,)), (scale - 1) * x1),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


weights = Clause(
    id="lse.weights",
    title="The weights are exp(x_ij - lse_i)",
    statement=(
        "p_ij = exp(x_ij - lse_i) for every kept key: the lse recovers the weights, hence O_i = sum_j exp(x_ij - "
        "lse_i) v_j. A kernel's backward pass rebuilds P this way, so an lse off by d scales every weight of the row "
        "by exp(-d)."
    ),
    expr=sympy.Eq(sympy.Symbol("p_ij"), sympy.exp(sympy.Symbol("x_ij") - lse_i)),
    derivation=Derivation((
        Step("exp(x_1 - lse) is the softmax weight of key 1",
             sympy.exp(x1 - log_sum_exp(_ROW, shift)), sympy.exp(x1) / sum(sympy.exp(v) for v in _ROW),
             check=evaluated),
        Step("the weights so rebuilt sum to one", sum(sympy.exp(v - log_sum_exp(_ROW)) for v in _ROW),
             sympy.Integer(1)),
        Step("the lse without its shift (log sum exp(x_j - m)) rebuilds weights exp(m) times too large",
             sympy.exp(x1 - (log_sum_exp(_ROW, shift) - shift)) / sympy.exp(x1 - log_sum_exp(_ROW, shift)),
             sympy.exp(shift)),
    )),
    section=SECTION[0],
    symbols={**_SYMBOLS, "p_ij": "the attention weight of query i on key j"},
)


empty_row = Clause(
    id="lse.empty-row",
    title="A row with no kept key has lse -inf",
    statement=(
        "A row whose every key is dropped (masks, the causal rule, a window, a key length of 0) has the empty sum 0 "
        "as its denominator and lse_i = log 0 = -inf, whatever convention its output follows: never 0, NaN or the "
        "most negative finite number. With an attention sink s_h (clause sinks.formula) the denominator keeps the "
        "sink's term exp(s_h), so such a row has lse_i = s_h."
    ),
    expr=sympy.Eq(lse_i, -sympy.oo, evaluate=False),
    derivation=Derivation((
        Step("a key dropped with score -inf adds exp(-inf) = 0 to the sum", log_sum_exp((x1, -sympy.oo)),
             log_sum_exp((x1,))),
        Step("with every key dropped the sum is 0, and log t -> -inf as t -> 0+",
             sympy.Limit(sympy.log(_t), _t, 0, "+"), -sympy.oo, check=same_infinity),
        Step("as every score of a row tends to -inf so does its lse",
             sympy.Limit(log_sum_exp((x1, x1)), x1, -sympy.oo), -sympy.oo, check=same_infinity),
        Step("with a sink s_h the empty row's denominator is exp(s_h) alone", sympy.log(sympy.exp(_sink)), _sink),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _block_output(lse_block, out_block, total) -> sympy.Expr:
    return sympy.exp(lse_block - total) * out_block


combine = Clause(
    id="lse.combine",
    title="The lse of two blocks of keys combine as log(exp(a) + exp(b))",
    statement=(
        "Split the kept keys of a row into two blocks with lse a and b and outputs o_a, o_b (each normalised over its "
        "own block): the whole row has lse = log(exp(a) + exp(b)) = max(a, b) + log(1 + exp(-|a - b|)) and output "
        "exp(a - lse) o_a + exp(b - lse) o_b. Split-KV (flash-decoding) kernels merge their partial results this way; "
        "an empty block (lse -inf) adds nothing."
    ),
    expr=sympy.Eq(lse_i, sympy.log(sympy.exp(a) + sympy.exp(b))),
    derivation=Derivation((
        Step("blocks {x_1, x_2} and {x_3}: log(exp(a) + exp(b)) is the lse of the whole row",
             sympy.log(sympy.exp(log_sum_exp((x1, x2))) + sympy.exp(log_sum_exp((x3,)))), log_sum_exp(_ROW),
             check=evaluated),
        Step("in the stable form with a >= b: a + log(1 + exp(b - a))",
             sympy.exp(a + sympy.log(1 + sympy.exp(b - a))), sympy.exp(a) + sympy.exp(b)),
        Step("the block weights exp(a - lse) and exp(b - lse) sum to one",
             _block_output(a, 1, sympy.log(sympy.exp(a) + sympy.exp(b)))
             + _block_output(b, 1, sympy.log(sympy.exp(a) + sympy.exp(b))), sympy.Integer(1)),
        Step("an empty block (b = -inf) leaves the lse a",
             sympy.Limit(sympy.log(sympy.exp(a) + sympy.exp(b)), b, -sympy.oo), a, check=evaluated),
        Step("the combined lse exceeds the larger block's, a: log(1 + exp(b - a)) > 0",
             sympy.Gt(sympy.log(1 + sympy.exp(b - a)), 0, evaluate=False), sympy.true, check=relation),
    )),
    section=SECTION[0],
    symbols={**_SYMBOLS, "a, b": "the lse of each block of keys", "o_a, o_b": "the output of each block"},
)

CLAUSES = (definition, weights, empty_row, combine)
