"""The log-sum-exp of each row as a variant of the ``sdpa`` contract (clauses ``lse.*``).

Declared by ``lse=True`` (``kqv check --lse``), it adds the keyword ``return_lse=True`` to the
backend's call, which then returns ``(output, lse)``: ``lse (..., L)`` the natural log of each query
row's softmax denominator, ``-inf`` for a row that keeps no key, in float32 or wider or in the
inputs' dtype, judged at the precision it comes back in. The reference's stages are unchanged
(the keyword goes to the call only), so every check can draw it now and then and judge the output
it returns beside the lse. The checks are in ``kqv.conformance.variants.lse.checks``.
"""

from __future__ import annotations

import dataclasses

from ..base import Variant


def draw(draw_from, case, declaration, profile):
    """The case asking for the lse: no parameter to draw."""
    return dataclasses.replace(case, variants=case.variants + (("lse", True),))


VARIANT = Variant(
    name="lse",
    help="accepts return_lse=True and returns (output, lse): lse (..., L) is the natural log of each row's softmax "
         "denominator, -inf for a row with no kept key, in float32 or wider or in the inputs' dtype",
    clauses=("lse.definition", "lse.weights", "lse.empty-row", "lse.combine"),
    draw=draw,
    keywords=lambda parameter: {"return_lse": True},
    checks="kqv.conformance.variants.lse.checks",
    result="lse",
)
