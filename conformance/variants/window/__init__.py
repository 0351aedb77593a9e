"""Sliding-window (local) attention as a variant of the ``sdpa`` contract (clauses ``window.*``).

Declared by ``window=True`` (``kqv check --window``), it adds the keyword ``window=(left, right)``
to the call and to the reference: query ``i`` keeps key ``j`` iff
``i + o - left <= j <= i + o + right``, ``o`` the offset of the backend's causal alignment (0
top-left, ``S - L`` bottom-right), a side None unbounded. A case records ``(left, right)``. The
checks are in ``kqv.conformance.variants.window.checks``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from hypothesis import strategies as st

from kqv.reference.stages import drop_window

from ...strategies import choice, integers
from ..base import Variant

SMALL = 3  # windows of 0 to 3 keys on a side are drawn first


def offset(case) -> int:
    """The alignment offset ``o`` of the case: 0 top-left, ``S - L`` bottom-right."""
    return 0 if case.alignment == "top-left" else case.S - case.L


def keeps(window: tuple[int | None, int | None], case) -> np.ndarray:
    """``(L, S)`` bool: True where the window keeps the key, by the reference's own stage (clause
    ``window.index-rule``)."""
    return drop_window(np.zeros((case.L, case.S)), offset(case), window) == 0


def _side(draw_from, least: int, largest: int) -> int | None:
    """None (unbounded) first, then a small side, then any up to past the sequences."""
    return draw_from(st.one_of(st.none(), integers(least, least + SMALL), integers(least, max(least, largest))))


def draw(draw_from, case, declaration, profile, *, fixed: tuple[Any, Any] | None = None, wide: bool = False):
    """``(left, right)``: each side None, small (0 to 3 more than it must be) or up to past ``max(L, S)``.

    Unless the case asks for empty rows, every row keeps a key in its window: ``left`` reaches back
    to key ``S - 1`` from the last row and ``right`` forward to key 0 from the first. ``fixed`` gives
    the window as is; ``wide`` draws sides of at least ``max(L, S) - 1`` (clause ``window.no-window``).
    Under a budget of shapes (``profile.shapes``) the window is one of the case's two :func:`budgeted` ones.
    """
    if fixed is not None:
        window = tuple(fixed)
    elif profile.shapes and not wide:
        window = draw_from(choice(budgeted(case, profile.shape_seed)))
    else:
        o, largest = offset(case), case.L + case.S
        least_left = 0 if case.empty_rows else max(0, case.L - 1 + o - (case.S - 1))
        least_right = 0 if case.empty_rows else max(0, -o)
        if wide:
            least_left = least_right = max(case.L, case.S) - 1
        window = (_side(draw_from, least_left, largest), _side(draw_from, least_right, largest))
        if wide:
            window = tuple(least_left if side is None else side for side in window)
    return dataclasses.replace(case, variants=case.variants + (("window", tuple(window)),))


def budgeted(case, seed: int) -> tuple[tuple[int | None, int | None], ...]:
    """The two windows a run under a budget of shapes draws on a case's sizes (a backend that compiles per shape
    compiles per window too): a sliding window ``(k, 0)`` and a window with a side None or two bounded sides, both
    keeping a key in every row, picked by the run's ``seed`` and the sizes."""
    rng = np.random.default_rng([seed, case.L, case.S, offset(case) + case.L])
    o = offset(case)
    least_left, least_right = max(0, case.L - 1 + o - (case.S - 1)), max(0, -o)
    sliding = (least_left + int(rng.integers(0, SMALL + 1)), least_right)
    sides = [None, least_left + int(rng.integers(0, case.L + case.S)), least_right + int(rng.integers(0, SMALL + 1))]
    other = (sides[0], sides[2]) if rng.random() < 0.5 else (sides[1], sides[2])
    return tuple(dict.fromkeys((sliding, other)))


VARIANT = Variant(
    name="window",
    help="accepts window=(left, right): query i keeps key j iff i + o - left <= j <= i + o + right, o the offset of "
         "the causal alignment, a side None unbounded (sliding-window attention)",
    clauses=("window.index-rule", "window.causal", "window.no-window", "window.outside-keys"),
    draw=draw,
    keywords=lambda window: {"window": tuple(window)},
    checks="kqv.conformance.variants.window.checks",
    keeps=keeps,
    positional=True,
)
