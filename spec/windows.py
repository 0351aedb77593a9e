"""Section "windows": sliding-window (local) attention, a variant of the sdpa contract.

With ``window=(left, right)`` query ``i`` keeps only the keys within ``left`` positions before and
``right`` positions after its own, ``i + o``, where ``o`` is the alignment offset (0 top-left,
``S - L`` bottom-right, the offset of the causal rule). A side that is None is unbounded, so the
causal rule is the window ``(None, 0)``, and a window of ``W`` keys that ends at the query's own
position is ``(W - 1, 0)`` (passing ``(W, W)`` there, which keeps ``2W + 1`` keys, is the classic
mistake). With a mask or ``is_causal`` too, a key takes part only if each keeps it.
"""

from __future__ import annotations

import sympy

from . import symbolic
from .checks import evaluated, same_matrix
from .clause import Clause, Derivation, Step
from .notation import K, L, O, S, V, c, e, i, j

SECTION = ("windows", "Sliding windows")
PAGE = "windows"  # the docs page that renders the section

left, right, o = sympy.symbols("left right o", integer=True)
kept = sympy.Function("kept")

_SYMBOLS = {"left": "keys kept before the query's own position (None: unbounded)",
            "right": "keys kept after it (None: unbounded)",
            "o": "the alignment offset: 0 top-left, S - L bottom-right",
            "kept(i, j)": "1 if query i keeps key j, else 0",
            "kept(i, j, left, right)": "the same for the window (left, right), oo for an unbounded side"}


def window_keep(rows: int, keys: int, offset: int, before: int | None, after: int | None) -> sympy.ImmutableMatrix:
    """The keep matrix ``(rows, keys)`` of the window rule: 1 where ``i + o - left <= j <= i + o + right``."""
    def keeps(a: int, b: int) -> int:
        return int((before is None or b >= a + offset - before) and (after is None or b <= a + offset + after))
    return sympy.ImmutableMatrix([[keeps(a, b) for b in range(keys)] for a in range(rows)])


def _causal_keep(rows: int, keys: int, offset: int) -> sympy.ImmutableMatrix:
    return sympy.ImmutableMatrix([[int(b <= a + offset) for b in range(keys)] for a in range(rows)])


def _index_rule_derivation() -> Derivation:
    return Derivation((
        Step("L = 3, S = 5 bottom-right (o = 2), window (1, 0): query i keeps keys i + 1 and i + 2",
             window_keep(3, 5, 2, 1, 0),
             sympy.ImmutableMatrix([[0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]), check=same_matrix),
        Step("the same window top-left (o = 0): query i keeps keys i - 1 and i",
             window_keep(3, 5, 0, 1, 0),
             sympy.ImmutableMatrix([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0]]), check=same_matrix),
        Step("a window of W = 3 keys ending at the query is (2, 0): each row keeps at most 3 keys",
             sympy.Matrix(window_keep(4, 6, 2, 2, 0)) * sympy.ones(6, 1), sympy.ImmutableMatrix([3, 3, 3, 3]),
             check=same_matrix),
        Step("(W, W) = (3, 3) keeps up to 2W + 1 = 7 keys instead",
             max(sympy.Matrix(window_keep(7, 7, 0, 3, 3)) * sympy.ones(7, 1)), sympy.Integer(7)),
    ))


index_rule = Clause(
    id="window.index-rule",
    title="Query i keeps the keys from i + o - left to i + o + right",
    statement=(
        "With window=(left, right), query i keeps key j iff i + o - left <= j <= i + o + right, o being the alignment "
        "offset (0 top-left, S - L bottom-right; per batch entry kv_lengths[b] - L with key lengths); a side None is "
        "unbounded. The window drops keys like a bool mask does (their weight is exactly 0), together with any mask, "
        "is_causal and key lengths: a key takes part only if each keeps it."
    ),
    expr=sympy.Eq(kept(i, j), sympy.Piecewise((1, sympy.And(j >= i + o - left, j <= i + o + right)), (0, True))),
    derivation=_index_rule_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _causal_derivation() -> Derivation:
    steps = []
    for rows, keys in ((3, 3), (3, 5), (5, 3)):
        for offset, name in ((0, "top-left"), (keys - rows, "bottom-right")):
            steps.append(Step(f"L = {rows}, S = {keys}, {name}: the window (None, 0) keeps the keys the causal rule "
                              f"keeps", window_keep(rows, keys, offset, None, 0), _causal_keep(rows, keys, offset),
                              check=same_matrix))
    return Derivation(tuple(steps))


causal = Clause(
    id="window.causal",
    title="is_causal is the window (None, 0)",
    statement=(
        "The causal rule, j <= i + o, is the window with no left bound and right = 0, in either alignment: a backend's "
        "window=(None, 0) and its is_causal=True give the same output. A window of W keys ending at the query's own "
        "position, as sliding-window models use it, is (W - 1, 0) with is_causal, or the window alone."
    ),
    expr=sympy.Eq(kept(i, j, sympy.oo, 0), sympy.Piecewise((1, j <= i + o), (0, True))),
    derivation=_causal_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _no_window_derivation() -> Derivation:
    steps = []
    for rows, keys in ((2, 4), (4, 2), (3, 3)):
        largest = max(rows, keys) - 1
        for offset, name in ((0, "top-left"), (keys - rows, "bottom-right")):
            steps.append(Step(f"L = {rows}, S = {keys}, {name}: left = right = max(L, S) - 1 = {largest} keeps every "
                              f"key", window_keep(rows, keys, offset, largest, largest), sympy.ones(rows, keys),
                              check=same_matrix))
    steps.append(Step("one less on the left drops a key in the top-left alignment when L > S: query L - 1 = 3 no "
                      "longer keeps key 0", window_keep(4, 2, 0, 2, 3)[3, 0], sympy.Integer(0)))
    return Derivation(tuple(steps))


no_window = Clause(
    id="window.no-window",
    title="A window wider than the sequences is no window",
    statement=(
        "A window with left >= max(L, S) - 1 and right >= max(L, S) - 1 keeps every key in either alignment "
        "(i + o lies between min(0, S - L) and max(L, S) - 1), so its output is that of the call without a window."
    ),
    expr=sympy.Implies(sympy.And(left >= sympy.Max(L, S) - 1, right >= sympy.Max(L, S) - 1),
                       sympy.Eq(kept(i, j), 1)),
    derivation=_no_window_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)


def _outside_derivation() -> Derivation:
    query, key, value = (symbolic.matrix(name, 3, 1, real=True) for name in ("q", "k", "v"))
    mask = window_keep(3, 3, 0, 0, 1).applyfunc(lambda kept_: 0 if kept_ else -sympy.oo)  # (0, 1): keys i, i + 1
    output = symbolic.sdpa(query, key, value, mask=mask)
    steps = [Step(f"L = S = 3, window (0, 1): O_{a} does not depend on key {b} or value {b}, outside its window",
                  sympy.Derivative(output[a, 0], key[b, 0]) + sympy.Derivative(output[a, 0], value[b, 0]),
                  sympy.Integer(0), check=evaluated)
             for a, b in ((0, 2), (2, 0), (2, 1))]
    return Derivation(tuple(steps))


outside_keys = Clause(
    id="window.outside-keys",
    title="A key outside the window cannot move the output",
    statement=(
        "Output row i does not depend on key j or value j for j outside its window: dO_ic/dK_je = 0 and dO_ic/dV_jc = 0 "
        "for j < i + o - left or j > i + o + right; changing those keys and values, to any finite numbers, leaves the "
        "row as it was."
    ),
    expr=sympy.Implies(sympy.Eq(kept(i, j), 0), sympy.And(sympy.Eq(sympy.Derivative(O[i, c], K[j, e]), 0),
                                                          sympy.Eq(sympy.Derivative(O[i, c], V[j, c]), 0))),
    derivation=_outside_derivation(),
    section=SECTION[0],
    symbols=_SYMBOLS,
)

CLAUSES = (index_rule, causal, no_window, outside_keys)
