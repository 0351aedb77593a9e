"""Logit soft-capping as a variant of the ``sdpa`` contract (clauses ``softcap.*``).

Declared by ``softcap=True`` (``kqv check --softcap``), it adds the keyword ``softcap=c`` to the
call and to the reference: each score becomes ``c tanh(s q . k / c)``, after the scale and before
any bias or mask. A case records ``c``. The checks are in ``kqv.conformance.variants.softcap.checks``.
"""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from ...strategies import choice
from ..base import Variant

CAPS = (50.0, 20.0, 5.0, 1.0, 0.5, 0.125)  # from barely biting to flattening every row; Gemma 2 uses 50 and 30


def draw(draw_from, case, declaration, profile, *, caps: tuple[float, ...] = CAPS, anywhere: bool = False):
    """``c`` from ``caps`` (numbers every float format holds exactly), or with ``anywhere`` also any from 0.05 to 100:
    against scores of a few units (and the value profiles that reach past where ``exp`` overflows), most of them
    bite. The checks of the cap itself draw ``anywhere``; the others, drawing the cap now and then, keep to
    ``caps``, so that a backend whose cap is a float32 attribute (ONNX) departs on the clauses of the cap only."""
    drawn = st.one_of(choice(caps), st.floats(0.05, 100.0, allow_nan=False, allow_infinity=False)) if anywhere \
        else choice(caps)
    cap = draw_from(drawn)
    return dataclasses.replace(case, variants=case.variants + (("softcap", float(cap)),))


VARIANT = Variant(
    name="softcap",
    help="accepts softcap=c (c > 0): each score becomes c tanh(s q.k / c), after the scale and before any bias or "
         "mask (logit soft-capping)",
    clauses=("softcap.formula", "softcap.bounded", "softcap.order"),
    draw=draw,
    keywords=lambda cap: {"softcap": float(cap)},
    checks="kqv.conformance.variants.softcap.checks",
)
