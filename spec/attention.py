"""Section "attention": scaled dot-product attention as a whole, and what an implementation owes.

``Attention(Q, K, V) = softmax(s Q K^T + M) V``: the scores (section "scores"), the mask
(section "masking"), the softmax of each row over the keys (section "softmax") and the weighted sum
of the values (section "output"). Its properties: shapes, dtype, equivariance under permutations,
independence of batch entries, accuracy, finiteness; and the ``impl.*`` duties of any implementation.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import same_matrix, same_shape
from .clause import Clause, Derivation, Step
from .notation import (
    E, E_v, K, L, M, O, Q, S, V, Attention, Maximum, Softmax, c, e, i, j, k, s,
)

SECTION = ("attention", "Scaled dot-product attention")
PAGE = "attention"  # the docs page that renders the section

sdpa = Clause(
    id="attention.sdpa",
    title="Scaled dot-product attention",
    statement=(
        "Attention(Q, K, V) = softmax(s Q K^T + M) V: scores s Q K^T (s = 1/sqrt(d_k) unless given), plus the mask M, "
        "softmax over the keys of each query row, weighted sum of the value rows."
    ),
    expr=sympy.Eq(O, Softmax(s * Q * K.T + M) * V),
    section=SECTION[0],
    symbols={"Q": "query, (L, d_k)", "K": "key, (S, d_k)", "V": "value, (S, d_v)", "M": "additive mask, (L, S)",
             "O": "output, (L, d_v)"},
)

_query = sympy.MatrixSymbol("Q", L, E)
_key = sympy.MatrixSymbol("K", S, E)
_value = sympy.MatrixSymbol("V", S, E_v)
_shape = sympy.Function("shape")


def _shape_derivation() -> Derivation:
    return Derivation((
        Step("sympy's shape algebra: (L, E) (E, S) -> (L, S), plus (L, S), softmax keeps it, (L, S) (S, E_v) -> (L, E_v)",
             Softmax(s * _query * _key.T + M) * _value, sympy.Tuple(L, E_v), check=same_shape),
        Step("written out with L = 3, S = 4, E = 2, E_v = 5",
             symbolic.sdpa(symbolic.matrix("q", 3, 2), symbolic.matrix("k", 4, 2), symbolic.matrix("v", 4, 5)),
             sympy.Tuple(3, 5), check=same_shape),
    ))


shape = Clause(
    id="attention.shape",
    title="Shapes",
    statement=(
        "query (..., L, E), key (..., S, E), value (..., S, E_v) give output (..., L, E_v); "
        "query and key share E, key and value share S, the leading batch axes (...) are shared and the mask is (..., L, S)."
    ),
    expr=sympy.Eq(_shape(Attention(_query, _key, _value)), sympy.Tuple(L, E_v)),
    derivation=_shape_derivation(),
    section=SECTION[0],
    symbols={"L": "query length", "S": "key/value length", "E": "query/key width", "E_v": "value width"},
)

dtype = Clause(
    id="attention.dtype",
    title="Output dtype",
    statement=(
        "The output has the query's dtype (float16, bfloat16, float32 or float64 in, the same out), "
        "whatever the precision used inside."
    ),
    section=SECTION[0],
)

Pi_L = sympy.MatrixSymbol("Pi", L, L)
Pi_S = sympy.MatrixSymbol("Pi", S, S)


def _cyclic(size: int) -> sympy.ImmutableMatrix:
    """The permutation matrix that moves row a to row a + 1 (mod size)."""
    return sympy.ImmutableMatrix(size, size, lambda a, b: 1 if a == (b + 1) % size else 0)


def _permutation_queries() -> Derivation:
    query = symbolic.matrix("q", 3, 1, real=True)
    key = symbolic.matrix("k", 2, 1, real=True)
    value = symbolic.matrix("v", 2, 1, real=True)
    mask = symbolic.matrix("M", 3, 2, real=True)
    permutation = _cyclic(3)
    return Derivation((
        Step("L = 3, S = 2, a cyclic permutation of the query rows and of the mask rows, every entry",
             symbolic.sdpa(permutation * query, key, value, mask=permutation * mask),
             permutation * symbolic.sdpa(query, key, value, mask=mask), check=same_matrix),
    ))


permutation_queries = Clause(
    id="attention.permutation.queries",
    title="Permuting queries permutes the output",
    statement=(
        "For a permutation matrix Pi (L, L), Attention(Pi Q, K, V) with mask Pi M equals Pi Attention(Q, K, V) with mask M: "
        "output row i depends only on query row i and mask row i."
    ),
    expr=sympy.Eq(Attention(Pi_L * Q, K, V), Pi_L * Attention(Q, K, V)),
    derivation=_permutation_queries(),
    section=SECTION[0],
    symbols={"Pi": "a permutation matrix"},
)


def _permutation_keys() -> Derivation:
    query = symbolic.matrix("q", 2, 1, real=True)
    key = symbolic.matrix("k", 3, 1, real=True)
    value = symbolic.matrix("v", 3, 2, real=True)
    mask = symbolic.matrix("M", 2, 3, real=True)
    permutation = _cyclic(3)
    return Derivation((
        Step("L = 2, S = 3, d_v = 2, one cyclic permutation of the key rows, value rows and mask columns, every entry",
             symbolic.sdpa(query, permutation * key, permutation * value, mask=mask * permutation.T),
             symbolic.sdpa(query, key, value, mask=mask), check=same_matrix),
    ))


permutation_keys = Clause(
    id="attention.permutation.keys",
    title="Permuting keys and values together changes nothing",
    statement=(
        "For a permutation matrix Pi (S, S), Attention(Q, Pi K, Pi V) with mask M Pi^T equals Attention(Q, K, V) with mask M: "
        "the keys form a set, their order does not matter as long as each value and mask column moves with its key."
    ),
    expr=sympy.Eq(Attention(Q, Pi_S * K, Pi_S * V), Attention(Q, K, V)),
    derivation=_permutation_keys(),
    section=SECTION[0],
    symbols={"Pi": "a permutation matrix"},
)


def _batch_independence() -> Derivation:
    queries = [symbolic.matrix(f"q^{b}", 1, 1, real=True) for b in range(2)]
    keys = [symbolic.matrix(f"k^{b}", 2, 1, real=True) for b in range(2)]
    values = [symbolic.matrix(f"v^{b}", 2, 1, real=True) for b in range(2)]
    apart = sympy.Matrix.vstack(*(symbolic.sdpa(q, k_, v) for q, k_, v in zip(queries, keys, values)))
    block_mask = sympy.ImmutableMatrix(2, 4, lambda a, b: 0 if b // 2 == a else -sympy.oo)
    packed = symbolic.sdpa(sympy.Matrix.vstack(*queries), sympy.Matrix.vstack(*keys), sympy.Matrix.vstack(*values),
                           mask=block_mask)
    return Derivation((
        Step("two batch entries (L = 1, S = 2 each) packed into one attention whose mask lets each query see only its "
             "own entry's keys give the two separate outputs: no entry reaches another",
             packed, apart, check=same_matrix),
    ))


batch_independence = Clause(
    id="attention.batch-independence",
    title="Batch entries are independent",
    statement=(
        "Output entry b of the leading batch axes depends only on query b, key b, value b and mask b: "
        "O_b = Attention(Q_b, K_b, V_b), whatever the other entries hold (NaN included)."
    ),
    expr=sympy.Eq(sympy.MatrixSymbol("O_b", L, E_v),
                  Attention(sympy.MatrixSymbol("Q_b", L, E), sympy.MatrixSymbol("K_b", S, E),
                            sympy.MatrixSymbol("V_b", S, E_v))),
    derivation=_batch_independence(),
    section=SECTION[0],
)

u_s = sympy.Symbol("u_s", positive=True)
u_a = sympy.Symbol("u_a", positive=True)
eta = sympy.Symbol("eta_s", positive=True)
_exact = sympy.MatrixSymbol("O^*", L, E_v)
_weights = sympy.MatrixSymbol("P", L, S)
_scores = sympy.MatrixSymbol("A", L, S)
_magnitude = s * sympy.Sum(sympy.Abs(_query[i, e]) * sympy.Abs(_key[j, e]), (e, 0, E - 1))
_spread = sympy.Abs(_scores[i, j] - Maximum(_scores[i, k], k))
_exponent_error = Maximum((E + 2) * u_a * _magnitude + 6 * u_s * (_magnitude + sympy.Abs(M[i, j])) + 3 * u_s * _spread, j)
_growth = 2 * _exponent_error + 4 * u_s + (4 * S + 4) * u_a
_bound = (sympy.exp(_growth) - 1) * sympy.Sum(_weights[i, j] * sympy.Abs(_value[j, c]), (j, 0, S - 1)) \
    + u_s * sympy.Abs(_exact[i, c]) + 2 * eta * (sympy.Sum(sympy.Abs(_value[j, c]), (j, 0, S - 1)) + S + 1)

accuracy = Clause(
    id="attention.accuracy",
    page="error-model",  # with the error model it states
    title="Forward-error bound",
    statement=(
        "On the same inputs rounded to the dtype, each output entry is within B_ic of the exact O*_ic: "
        "B_ic = expm1(2 D_i + 4 u_s + (4 S + 4) u_a) sum_j P_ij |V_jc| + u_s |O*_ic| + 2 eta_s (sum_j |V_jc| + S + 1), "
        "D_i = max_j [(E + 2) u_a s sum_e |Q_ie||K_je| + 6 u_s (s sum_e |Q_ie||K_je| + |M_ij|) + 3 u_s |A_ij - max_k A_ik|], "
        "u_s the unit roundoff of the dtype, u_a that of the accumulation (float32 for float16 and bfloat16 unless "
        "declared), eta_s the underflow of one result (half the dtype's subnormal spacing, or the smallest normal "
        "number of the accumulation where a kernel may flush below it), j and k over the kept keys."
    ),
    expr=sympy.Le(sympy.Abs(O[i, c] - _exact[i, c]), _bound),
    section=SECTION[0],
    symbols={"u_s": "unit roundoff of the storage dtype", "u_a": "unit roundoff of the accumulation",
             "eta_s": "underflow of one result", "O^*": "exact output", "A": "scores (mask included)",
             "P": "weights", "M": "additive mask"},
)

finite = Clause(
    id="attention.finite",
    title="No NaN or inf where the spec has a number",
    statement=(
        "With finite inputs, every query row with at least one kept key has a finite output: |O_ic| <= max_j |V_jc| "
        "over its kept keys (output.convex-hull), with no overflow in exp (softmax.stable); NaN may appear only in a "
        "fully masked row and only under the nan convention (mask.fully-masked-row)."
    ),
    expr=sympy.Le(sympy.Abs(O[i, c]), Maximum(sympy.Abs(V[j, c]), j)),
    section=SECTION[0],
)

def _tiles_derivation() -> Derivation:
    """Two tiles of two keys: the partial results of each, combined with their rescaling, are the softmax of all four."""
    scores = sympy.symbols("x_0:4", real=True)
    values = sympy.symbols("v_0:4", real=True)
    tiles = ((0, 1), (2, 3))
    shift = sympy.symbols("m_1 m_2", real=True)  # any shift per tile (its max, in a kernel)
    common = sympy.Symbol("m", real=True)
    partial_sums = [sympy.Add(*(sympy.exp(scores[j] - m_t) for j in tile)) for tile, m_t in zip(tiles, shift)]
    partial_outputs = [sympy.Add(*(sympy.exp(scores[j] - m_t) * values[j] for j in tile)) for tile, m_t in zip(tiles, shift)]
    rescale = [sympy.exp(m_t - common) for m_t in shift]
    combined = sympy.Add(*(r * o for r, o in zip(rescale, partial_outputs))) / sympy.Add(*(r * l for r, l in zip(rescale, partial_sums)))
    weights = symbolic.softmax(list(scores))
    unrescaled = sympy.Add(*partial_outputs) / sympy.Add(*partial_sums)
    return Derivation((
        Step("S = 4 keys in tiles {0, 1} and {2, 3}: the partial sums rescaled by exp(m_t - m) give softmax(x) v",
             combined, sympy.Add(*(w * v for w, v in zip(weights, values))),
             check=lambda lhs, rhs: sympy.simplify(sympy.powsimp(sympy.expand(lhs - rhs))) == 0),
        Step("each tile normalised on its own (no rescaling) agrees only where the two tiles share their shift",
             unrescaled.subs(shift[1], shift[0]), sympy.Add(*(w * v for w, v in zip(weights, values))),
             check=lambda lhs, rhs: sympy.simplify(sympy.powsimp(sympy.expand(lhs - rhs))) == 0),
    ))


_tile_output = sympy.Function("o")
_tile_sum = sympy.Function("l")
_tile_max = sympy.Function("m")
_t, _tiles = sympy.symbols("t n_T", integer=True, nonnegative=True)

tile_boundaries = Clause(
    id="attention.tile-boundaries",
    title="Every tile counts",
    statement=(
        "The output is the formula at every size, and in particular on either side of the tile sizes kernels work in "
        "(L, S = 15, 16, 17, ..., 255, 256, 257, 511, 512, 513; E, E_v = 15 .. 257; odd sizes such as 113 and 203): "
        "keys past the first tile take part, every feature of Q and K enters the scores, every value feature and "
        "every query row of the last partial tile is written, and the softmax of a row spans all its key tiles, "
        "each tile's partial sums o_t and l_t rescaled to the row's max m (softmax.online): "
        "O_i = sum_t exp(m_t - m) o_t / sum_t exp(m_t - m) l_t."
    ),
    expr=sympy.Eq(O[i, c], sympy.Sum(sympy.exp(_tile_max(_t) - sympy.Symbol("m")) * _tile_output(_t), (_t, 0, _tiles - 1))
                  / sympy.Sum(sympy.exp(_tile_max(_t) - sympy.Symbol("m")) * _tile_sum(_t), (_t, 0, _tiles - 1))),
    derivation=_tiles_derivation(),
    section=SECTION[0],
    symbols={"t": "a tile of keys, 0 <= t < n_T", "o_t": "sum over the tile of exp(x_j - m_t) v_j",
             "l_t": "sum over the tile of exp(x_j - m_t)", "m_t": "the tile's max", "m": "the row's max"},
)

determinism = Clause(
    id="impl.determinism",
    title="Deterministic",
    statement=(
        "Calling the implementation twice on the same inputs (same values, shapes, strides, dtype, device) "
        "gives bitwise identical outputs."
    ),
    section=SECTION[0],
)

inputs_unmodified = Clause(
    id="impl.inputs-unmodified",
    title="Inputs are not written to",
    statement=(
        "After a call, query, key, value and the mask hold bitwise the values they held before it "
        "(no in-place scaling, masking or softmax)."
    ),
    section=SECTION[0],
)

strided_inputs = Clause(
    id="impl.strided-inputs",
    title="Strided inputs",
    statement=(
        "Non-contiguous inputs (transposed, sliced with a step, expanded with stride 0, offset views) give the same "
        "output as contiguous copies of the same values, within attention.accuracy."
    ),
    section=SECTION[0],
)

CLAUSES = (
    sdpa,
    shape,
    dtype,
    permutation_queries,
    permutation_keys,
    batch_independence,
    accuracy,
    finite,
    tile_boundaries,
    determinism,
    inputs_unmodified,
    strided_inputs,
)
