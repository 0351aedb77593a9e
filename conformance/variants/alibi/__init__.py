"""ALiBi linear biases as a variant of the ``sdpa`` contract (clauses ``alibi.*``).

Declared by ``alibi=True`` (``kqv check --alibi``), it adds the keyword ``alibi_slopes`` to the call
and to the reference: float64 slopes ``(H_q,)`` or ``(B, H_q)``, query head ``h`` adding
``-m_h |i + o - j|`` to its capped scores, ``o`` the offset of the backend's causal alignment. A
case records the slopes (nested tuples, exact in the dtype under test); its last batch dim is
``H_q``. The checks are in ``kqv.conformance.variants.alibi.checks``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from hypothesis import strategies as st

from kqv.reference import alibi_slopes

from ...dtypes import round_to
from ...strategies import choice, integers, seeds
from ..base import Variant

# From slopes that barely tilt a row to slopes whose bias of one position outweighs scores of a few units.
MAGNITUDES = (1.0, 0.1, 10.0, 1e-3, 30.0)
SIGNS = ("positive", "mixed", "negative")  # the paper's slopes are positive; the formula takes any real


def with_heads(draw_from, case, declaration, least_heads: int):
    """The case with a head axis of at least ``least_heads`` heads, where it can have one.

    A case without batch dims gets the fewest the backend accepts; one with too few heads gets a
    multiple of them (so a key/value head count of grouped-query attention still divides them), and
    the per-head parameters of the variants it already uses repeat with them (new head ``h`` is old
    head ``h mod H_q``). Under a budget of shapes the case keeps its batch dims: :func:`fits` chose them.
    """
    from .. import variant

    batch = case.batch
    if not batch:
        counts = [n for n in declaration.batch_dims if n >= 1]
        if not counts:
            return case
        batch = (1,) * (min(counts) - 1) + (draw_from(integers(least_heads, least_heads + 2)),)
    heads = batch[-1]
    if heads >= least_heads:
        return dataclasses.replace(case, batch=batch)
    batch = batch[:-1] + (heads * -(-least_heads // heads),)
    order = np.arange(batch[-1]) % heads  # new head h repeats old head h mod H_q
    variants = tuple((name, variant(name).heads(parameter, order)) for name, parameter in case.variants)
    return dataclasses.replace(case, batch=batch, variants=variants)


def _drawn_slopes(draw_from, shape: tuple[int, ...]) -> np.ndarray:
    """Slopes of one magnitude (within a decade below it), of a sign rule, ``shape``."""
    magnitude = draw_from(st.one_of(choice(MAGNITUDES), st.floats(1e-4, 30.0)))
    signs = draw_from(choice(SIGNS))
    rng = np.random.default_rng(draw_from(seeds()))
    slopes = magnitude * 10 ** rng.uniform(-1, 0, shape)  # (*shape)
    if signs == "negative":
        return -slopes
    return slopes * rng.choice([-1.0, 1.0], shape) if signs == "mixed" else slopes


def draw(draw_from, case, declaration, profile, *, helper: bool | None = None, least_heads: int = 1):
    """Slopes ``(H_q,)`` or, with two batch dims or more, now and then ``(B, H_q)``: the paper's
    (:func:`kqv.reference.alibi_slopes`) or drawn (:func:`_drawn_slopes`), rounded to the dtype under test.

    ``helper`` True or False forces the paper's slopes or drawn ones; ``least_heads`` the heads the
    case has at least. A case that cannot have a head axis comes back unchanged.
    """
    if not profile.shapes:
        case = with_heads(draw_from, case, declaration, least_heads)
    if not case.batch or case.batch[-1] < least_heads:
        return case
    heads = case.batch[-1]
    per_batch = len(case.batch) >= 2 and draw_from(st.booleans())
    shape = (case.batch[-2], heads) if per_batch else (heads,)
    paper = draw_from(st.booleans()) if helper is None else helper
    slopes = np.broadcast_to(alibi_slopes(heads), shape) if paper else _drawn_slopes(draw_from, shape)
    exact = np.asarray(round_to(slopes, case.dtype), dtype=np.float64)  # (*shape)
    return dataclasses.replace(case, variants=case.variants + (("alibi", nested(exact)),))


def nested(slopes: np.ndarray) -> Any:
    """The slopes as nested tuples of floats, which a case holds and writes to JSON."""
    return tuple(nested(row) for row in slopes) if slopes.ndim > 1 else tuple(float(m) for m in slopes)


VARIANT = Variant(
    name="alibi",
    help="accepts alibi_slopes, (H_q,) or (B, H_q): query head h adds -m_h |i + o - j| to its scores, o the offset of "
         "the causal alignment (ALiBi linear biases)",
    clauses=("alibi.formula", "alibi.float-mask", "alibi.per-row-form", "alibi.head-order"),
    draw=draw,
    keywords=lambda slopes: {"alibi_slopes": np.asarray(slopes, dtype=np.float64)},
    checks="kqv.conformance.variants.alibi.checks",
    fits=lambda batch, least_heads=1, **options: bool(batch) and batch[-1] >= least_heads,
    positional=True,
    biased=True,
    heads=lambda slopes, order: nested(np.asarray(slopes)[..., order]),  # a slope moves with its query head
)
