"""Section "heads": grouped-query and multi-query attention, the first variant of the sdpa contract.

With ``enable_gqa`` the query has ``H_q`` heads and the key and value ``H_kv`` heads on the head axis
(-3): query ``(..., H_q, L, E)``, key ``(..., H_kv, S, E)``, value ``(..., H_kv, S, E_v)``, with
``H_q`` a multiple of ``H_kv``. Each group of ``G = H_q / H_kv`` consecutive query heads shares one
key/value head: query head ``h`` reads key/value head ``floor(h / G)``. That is ordinary attention on
K and V repeated in place ``G`` times (``repeat_interleave``), not tiled (``h mod H_kv``, the classic
bug). Multi-query attention is ``H_kv = 1``.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import same_matrix
from .clause import Clause, Derivation, Step

SECTION = ("heads", "Grouped-query attention")
PAGE = "grouped-query"  # the docs page that renders the section

H_q, H_kv, G = sympy.symbols("H_q H_kv G", integer=True, positive=True)
h = sympy.Symbol("h", integer=True, nonnegative=True)  # a query head
g = sympy.Function("g")  # the key/value head a query head reads

_SYMBOLS = {"H_q": "query heads", "H_kv": "key/value heads, H_q = G H_kv", "G": "query heads per key/value head",
            "h": "a query head, 0 <= h < H_q", "g(h)": "the key/value head that query head h reads"}


def _reads(query_heads: int, kv_heads: int) -> sympy.ImmutableMatrix:
    """The key/value head read by each query head, by the rule floor(h / G), as a column."""
    group = sympy.Integer(query_heads) / kv_heads
    return sympy.ImmutableMatrix([sympy.floor(sympy.Integer(n) / group) for n in range(query_heads)])


def _mapping_derivation() -> Derivation:
    tiled = sympy.ImmutableMatrix([n % 2 for n in range(6)])
    return Derivation((
        Step("H_q = 6, H_kv = 2, G = 3: query heads 0, 1, 2 read key/value head 0 and heads 3, 4, 5 read head 1",
             _reads(6, 2), sympy.ImmutableMatrix([0, 0, 0, 1, 1, 1]), check=same_matrix),
        Step("tiling (h mod H_kv) is another map: it sends query head 1 to key/value head 1",
             (_reads(6, 2) - tiled)[1], sympy.Integer(-1)),
        Step("G = 1 (H_kv = H_q = 3): each query head reads its own key/value head",
             _reads(3, 3), sympy.ImmutableMatrix([0, 1, 2]), check=same_matrix),
    ))


head_mapping = Clause(
    id="gqa.head-mapping",
    title="Query head h reads key/value head floor(h / G)",
    statement=(
        "With enable_gqa, query (..., H_q, L, E), key (..., H_kv, S, E) and value (..., H_kv, S, E_v) with H_q a multiple "
        "of H_kv, G = H_q / H_kv: query head h attends with key head and value head g(h) = floor(h / G), so heads "
        "0 .. G-1 share key/value head 0, the next G share head 1, and so on (repeat-interleave, not tiling h mod H_kv). "
        "The output is (..., H_q, L, E_v)."
    ),
    expr=sympy.Eq(g(h), sympy.floor(h / G)),
    derivation=_mapping_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _multi_query_derivation() -> Derivation:
    return Derivation((
        Step("H_q = 4, H_kv = 1, G = 4: every query head reads key/value head 0",
             _reads(4, 1), sympy.zeros(4, 1), check=same_matrix),
        Step("in general floor(h / H_q) = 0 for 0 <= h < H_q: h / H_q lies in [0, 1)",
             sympy.floor(sympy.Rational(3, 4)), sympy.Integer(0)),
    ))


multi_query = Clause(
    id="gqa.multi-query",
    title="Multi-query attention: one key/value head",
    statement=(
        "With H_kv = 1 (multi-query attention) every query head reads the one key/value head: grouped-query attention "
        "is then attention with K and V broadcast over the head axis."
    ),
    expr=sympy.Eq(g(h), sympy.floor(h / H_q)),
    derivation=_multi_query_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _heads(name: str, count: int, rows: int, columns: int) -> list[sympy.ImmutableMatrix]:
    return [symbolic.matrix(f"{name}{n}", rows, columns, real=True) for n in range(count)]


def _stacked(blocks: list[sympy.ImmutableMatrix]) -> sympy.ImmutableMatrix:
    return sympy.ImmutableMatrix(sympy.Matrix.vstack(*blocks))


def _repeat_derivation() -> Derivation:
    keys = _heads("k", 2, 1, 2)  # H_kv = 2 heads of S = 1 key, E = 2
    interleaved = sympy.kronecker_product(sympy.eye(2), sympy.ones(2, 1)) * _stacked(keys)
    tiled = sympy.kronecker_product(sympy.ones(2, 1), sympy.eye(2)) * _stacked(keys)
    queries, values = _heads("q", 4, 1, 2), _heads("v", 2, 2, 1)
    keys2 = _heads("k", 2, 2, 2)
    grouped = [symbolic.sdpa(queries[n], keys2[n // 2], values[n // 2]) for n in range(4)]
    repeated_keys = [keys2[0], keys2[0], keys2[1], keys2[1]]
    repeated_values = [values[0], values[0], values[1], values[1]]
    return Derivation((
        Step("H_kv = 2, G = 2: repeating in place is (I_H_kv kron 1_G) acting on the stacked heads: K_0, K_0, K_1, K_1",
             interleaved, _stacked([keys[0], keys[0], keys[1], keys[1]]), check=same_matrix),
        Step("tiling is (1_G kron I_H_kv): K_0, K_1, K_0, K_1, another order",
             tiled, _stacked([keys[0], keys[1], keys[0], keys[1]]), check=same_matrix),
        Step("L = 1, S = 2, E = 2, E_v = 1: head h of grouped-query attention is Attention(Q_h, R(K)_h, R(V)_h)",
             _stacked(grouped),
             _stacked([symbolic.sdpa(queries[n], repeated_keys[n], repeated_values[n]) for n in range(4)]),
             check=same_matrix),
    ))


repeat_interleave = Clause(
    id="gqa.repeat-interleave",
    title="GQA is attention on K and V repeated in place",
    statement=(
        "Grouped-query attention equals ordinary attention of Q with R(K) and R(V), where R repeats each key/value "
        "head G times in place along the head axis (repeat_interleave: K_0 .. K_0, K_1 .. K_1, ...), not tiled "
        "(K_0, K_1, .., K_0, K_1, ..)."
    ),
    expr=sympy.Eq(sympy.Function("O")(h), sympy.Function("Attention")(
        sympy.Function("Q")(h), sympy.Function("K")(sympy.floor(h / G)), sympy.Function("V")(sympy.floor(h / G)))),
    derivation=_repeat_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _group_derivation() -> Derivation:
    queries, keys, values = _heads("q", 4, 1, 1), _heads("k", 2, 2, 1), _heads("v", 2, 2, 1)

    def grouped(q, k, v):
        return _stacked([symbolic.sdpa(q[n], k[n // 2], v[n // 2]) for n in range(4)])

    swapped = grouped([queries[2], queries[3], queries[0], queries[1]], [keys[1], keys[0]], [values[1], values[0]])
    before = grouped(queries, keys, values)
    return Derivation((
        Step("H_kv = 2, G = 2, L = 1, S = 2: swapping the key/value heads with their query groups swaps the output groups",
             swapped, _stacked([before[2, :], before[3, :], before[0, :], before[1, :]]), check=same_matrix),
    ))


group_structure = Clause(
    id="gqa.group-structure",
    title="The heads of a group move together",
    statement=(
        "Permuting the key/value heads by pi, and the groups of query heads with them (group g takes the query heads of "
        "group pi(g)), permutes the output by whole groups: O'_{g G + r} = O_{pi(g) G + r} for 0 <= r < G."
    ),
    expr=sympy.Eq(sympy.Function("O'")(g(h) * G + sympy.Mod(h, G)),
                  sympy.Function("O")(sympy.Function("pi")(g(h)) * G + sympy.Mod(h, G))),
    derivation=_group_derivation(),
    section=SECTION[0],
    symbols={**_SYMBOLS, "pi": "a permutation of the key/value heads"},
)

CLAUSES = (head_mapping, multi_query, repeat_interleave, group_structure)
