"""Attention sinks as a variant of the ``sdpa`` contract (clauses ``sinks.*``).

Declared by ``sinks=True`` (``kqv check --sinks``), it adds the keyword ``sinks`` to the call and to
the reference: float64 logits ``(H_q,)``, the softmax of a row of query head ``h`` getting one more
term ``exp(sink_h - m)`` in its denominator and none in the output. A case records the sinks (a
tuple, exact in the dtype under test); its last batch dim is ``H_q``. The checks are in
``kqv.conformance.variants.sinks.checks``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st

from ...dtypes import round_to
from ...strategies import choice, seeds
from ..alibi import with_heads
from ..base import Variant

# Around scores of a few units: from far below them (no effect) to far above (the sink takes most of the mass).
LEVELS = (0.0, 3.0, -3.0, 10.0, -10.0, 40.0, -40.0, 1000.0, -1000.0)
SPREADS = (0.0, 1.0, 5.0)  # how far the heads' sinks scatter around the level


def draw(draw_from, case, declaration, profile, *, levels: tuple[float, ...] = LEVELS,
         spreads: tuple[float, ...] = SPREADS, least_heads: int = 1):
    """A sink per query head: a level (one of ``levels`` or any between their extremes) plus, per head, a normal
    scatter of one of ``spreads``, rounded to the dtype under test. ``least_heads`` the heads the case has at least
    (:func:`~kqv.conformance.variants.alibi.with_heads`); a case that cannot have a head axis comes back unchanged."""
    if not profile.shapes:
        case = with_heads(draw_from, case, declaration, least_heads)
    if not case.batch or case.batch[-1] < least_heads:
        return case
    level = draw_from(st.one_of(choice(levels), st.floats(min(levels), max(levels))))
    spread = draw_from(choice(spreads))
    rng = np.random.default_rng(draw_from(seeds()))
    sinks = level + spread * rng.standard_normal(case.batch[-1])  # (H_q,)
    exact = np.asarray(round_to(sinks, case.dtype), dtype=np.float64)
    return dataclasses.replace(case, variants=case.variants + (("sinks", tuple(float(v) for v in exact)),))


VARIANT = Variant(
    name="sinks",
    help="accepts sinks, (H_q,): the softmax of query head h gets one more term exp(sink_h - m) in its denominator "
         "and none in the output, so its weights sum to less than 1 and a row without a key gives 0 (attention sinks)",
    clauses=("sinks.formula", "sinks.mass", "sinks.empty-row", "sinks.limit", "sinks.head-order"),
    draw=draw,
    keywords=lambda sinks: {"sinks": np.asarray(sinks, dtype=np.float64)},
    checks="kqv.conformance.variants.sinks.checks",
    fits=lambda batch, least_heads=1, **options: bool(batch) and batch[-1] >= least_heads,
    heads=lambda sinks, order: tuple(float(v) for v in np.asarray(sinks)[order]),  # a sink moves with its head
    partial_rows=True,
)
