"""Section "lengths": key lengths (padding, a static KV cache) and decoding with a cache.

With ``kv_lengths`` (integers ``n_b``, one per entry ``b`` of the batch axis just before the heads)
entry ``b`` keeps only its first ``n_b`` keys, as if the call had been made on them alone: the
keys after them are padding. Bottom-right, the causal rule and a window are aligned to the last
valid key, offset ``o_b = n_b - L`` rather than ``S - L``. Decoding with a KV cache is the same
call one query row (or a few) at a time against the keys so far: it reproduces the rows of the
causal call on the whole sequence.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import evaluated, same_matrix
from .clause import Clause, Derivation, Step
from .notation import K, L, O, S, V, c, e, i, j

SECTION = ("lengths", "Key lengths and the KV cache")
PAGE = "lengths"  # the docs page that renders the section

n, o = sympy.symbols("n_b o_b", integer=True)
kept = sympy.Function("kept")

_SYMBOLS = {"n_b": "the valid keys of batch entry b (kv_lengths[b]), 0 <= n_b <= S",
            "o_b": "the alignment offset of entry b: 0 top-left, n_b - L bottom-right",
            "kept(i, j)": "1 if query i of the entry keeps key j, else 0"}


def lengths_keep(rows: int, keys: int, length: int, offset: int | None) -> sympy.ImmutableMatrix:
    """The keep matrix ``(rows, keys)`` of one batch entry: 1 where ``j < n_b`` and, with ``offset`` (the causal
    rule), ``j <= i + offset``."""
    return sympy.ImmutableMatrix([[int(b < length and (offset is None or b <= a + offset)) for b in range(keys)]
                                  for a in range(rows)])


def _causal_keep(rows: int, keys: int, offset: int) -> sympy.ImmutableMatrix:
    return sympy.ImmutableMatrix([[int(b <= a + offset) for b in range(keys)] for a in range(rows)])


index_rule = Clause(
    id="lengths.index-rule",
    title="Batch entry b keeps its first n_b keys",
    statement=(
        "With kv_lengths, query i of batch entry b keeps key j only if j < n_b = kv_lengths[b] (and every mask, the "
        "causal rule and a window keep it too); the keys j >= n_b are dropped like masked ones, with weight exactly 0. "
        "kv_lengths has shape (B,), B the batch axis just before the head axis, and integers 0 <= n_b <= S."
    ),
    expr=sympy.Eq(kept(i, j), sympy.Piecewise((1, j < n), (0, True))),
    derivation=Derivation((
        Step("L = 2, S = 5, n_b = 3: both rows keep keys 0, 1, 2", lengths_keep(2, 5, 3, None),
             sympy.ImmutableMatrix([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]), check=same_matrix),
        Step("the classic off-by-one, j <= n_b, keeps one padding key more",
             sympy.ImmutableMatrix([[int(b <= 3) for b in range(5)]]) - lengths_keep(1, 5, 3, None),
             sympy.ImmutableMatrix([[0, 0, 0, 1, 0]]), check=same_matrix),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


offset = Clause(
    id="lengths.offset",
    title="Bottom-right, the causal offset is n_b - L",
    statement=(
        "Bottom-right, the causal rule and a window of entry b are aligned to its last valid key: o_b = n_b - L, so "
        "the last query keeps key n_b - 1 and no padding key. When L > n_b the offset is negative and the leading "
        "rows keep no key (no clamping): they follow the convention of a fully masked row. Top-left, o_b = 0."
    ),
    expr=sympy.Eq(kept(i, j), sympy.Piecewise((1, sympy.And(j < n, j <= i + n - L)), (0, True))),
    derivation=Derivation((
        Step("L = 2, S = 5, n_b = 3 bottom-right: query 0 keeps keys 0, 1, query 1 keeps 0, 1, 2",
             lengths_keep(2, 5, 3, 3 - 2), sympy.ImmutableMatrix([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]),
             check=same_matrix),
        Step("the offset taken from S (S - L = 3) lets query 0 see key 2 too: the bug shows only on rows before the last",
             lengths_keep(2, 5, 3, 5 - 2) - lengths_keep(2, 5, 3, 3 - 2),
             sympy.ImmutableMatrix([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]), check=same_matrix),
        Step("L = 3, n_b = 1: o_b = -2, queries 0 and 1 keep no key, query 2 keeps key 0",
             lengths_keep(3, 4, 1, 1 - 3), sympy.ImmutableMatrix([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]),
             check=same_matrix),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _full_derivation() -> Derivation:
    steps = []
    for rows, keys in ((2, 4), (3, 3), (4, 2)):
        steps.append(Step(f"L = {rows}, S = {keys}, n_b = S bottom-right: the causal rule of the call without lengths",
                          lengths_keep(rows, keys, keys, keys - rows), _causal_keep(rows, keys, keys - rows),
                          check=same_matrix))
    return Derivation(tuple(steps))


full = Clause(
    id="lengths.full",
    title="Lengths of S are no lengths",
    statement=(
        "When every n_b = S, no key is dropped and o_b = S - L: the output is that of the call without kv_lengths, "
        "in either alignment, with or without is_causal and a window."
    ),
    expr=sympy.Implies(sympy.Eq(n, S), sympy.Eq(kept(i, j), sympy.Piecewise((1, j <= i + S - L), (0, True)))),
    derivation=_full_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _padding_derivation() -> Derivation:
    query, key, value = (symbolic.matrix(name, 3, 1, real=True) for name in ("q", "k", "v"))
    mask = lengths_keep(2, 3, 2, None).applyfunc(lambda kept_: 0 if kept_ else -sympy.oo)  # (2, 3): n_b = 2
    padded = symbolic.sdpa(query[:2, :], key, value, mask=mask)
    unpadded = symbolic.sdpa(query[:2, :], key[:2, :], value[:2, :])
    steps = [Step(f"L = 2, S = 3, n_b = 2: O_{a} does not depend on the padding key 2 or value 2",
                  sympy.Derivative(padded[a, 0], key[2, 0]) + sympy.Derivative(padded[a, 0], value[2, 0]),
                  sympy.Integer(0), check=evaluated) for a in (0, 1)]
    steps.append(Step("and equals attention on the first two keys alone", padded[1, 0] - unpadded[1, 0],
                      sympy.Integer(0)))
    return Derivation(tuple(steps))


padding = Clause(
    id="lengths.padding",
    title="Padding keys cannot move the output",
    statement=(
        "Entry b's output does not depend on its keys and values j >= n_b: a padded call gives the output of the call "
        "on the first n_b keys and values alone (bottom-right: with the offset n_b - L), whatever numbers the padding "
        "holds."
    ),
    expr=sympy.Implies(j >= n, sympy.And(sympy.Eq(sympy.Derivative(O[i, c], K[j, e]), 0),
                                         sympy.Eq(sympy.Derivative(O[i, c], V[j, c]), 0))),
    derivation=_padding_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


empty = Clause(
    id="lengths.empty-row",
    title="An entry of length 0 is a fully masked one",
    statement=(
        "With n_b = 0 every query of entry b keeps no key (and bottom-right with L > n_b so do its leading rows): "
        "such rows give the backend's convention of a fully masked row (clause mask.fully-masked-row), never a value "
        "read from the padding."
    ),
    expr=sympy.Implies(sympy.Eq(n, 0), sympy.Eq(kept(i, j), 0)),
    derivation=Derivation((
        Step("L = 2, S = 3, n_b = 0: no query keeps a key, with or without the causal rule",
             lengths_keep(2, 3, 0, None) + lengths_keep(2, 3, 0, 0 - 2), sympy.zeros(2, 3), check=same_matrix),
    )),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _decode_derivation() -> Derivation:
    steps = []
    rows, keys = 3, 5
    full_keep = _causal_keep(rows, keys, keys - rows)
    for t in range(rows):
        prefix = t + keys - rows + 1  # the keys in the cache when query t is decoded
        steps.append(Step(f"L = {rows}, S = {keys}: query {t} alone against keys 0..{prefix - 1} (L = 1, "
                          f"bottom-right) keeps the keys of row {t} of the causal call",
                          _causal_keep(1, prefix, prefix - 1).row_join(sympy.zeros(1, keys - prefix)),
                          full_keep[t, :], check=same_matrix))
    steps.append(Step("two queries at once (rows 1, 2 against keys 0..4, L = 2, o = 3) keep rows 1, 2 of it",
                      _causal_keep(2, keys, keys - 2), full_keep[1:, :], check=same_matrix))
    return Derivation(tuple(steps))


decode = Clause(
    id="cache.decode",
    title="Decoding against a KV cache reproduces the causal call",
    statement=(
        "Query rows t0..t1-1 attended against the keys and values 0..t1-1+S-L (the cache so far), bottom-right causal "
        "(one row needs no mask), give rows t0..t1-1 of the bottom-right causal call on all L queries and S keys. With "
        "kv_lengths, a cache padded to any length with n_b the keys so far gives the same rows."
    ),
    expr=sympy.Eq(kept(i, j), sympy.Piecewise((1, j <= i + S - L), (0, True))),
    derivation=_decode_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)

CLAUSES = (index_rule, offset, full, padding, empty, decode)
