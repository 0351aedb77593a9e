"""The checks of ALiBi linear biases (clauses ``alibi.*``), for backends that declare ``alibi``.

Each draws cases that use the variant with every mask, causal flag, value profile and scale the
backend takes (and the other variants it declares, now and then): agreement with the reference,
the same output as a float mask of the bias, keys on both sides of the query (where the per-row
form ``m_h j`` goes wrong), and the slopes following their heads when the heads are permuted.
"""

from __future__ import annotations

import numpy as np

from kqv.reference.stages import alibi_bias

from ...dtypes import round_to
from ...kinds.sdpa.call import against, judge
from ...kinds.sdpa.case import MASKS, VALUES
from ...kinds.sdpa.strategy import cases
from ...registry import check, needs, needs_batch, needs_non_causal, needs_variant
from ..gqa import without_grouping

REQUIRES = (needs_variant("alibi"), needs_batch)
BOTH_SIDES = ("normal", "zeros", "ties", "identical-keys")  # scores that leave the bias to decide


@check("alibi.formula", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True,
                                      variants={"alibi": {}}), requires=REQUIRES, variant="alibi")
def formula(backend, case, context):
    """Query head h adds -m_h |i + o - j| to its scores, with every mask, alignment, value profile and scale."""
    judge(backend, case)


def _as_float_mask(inputs, alignment, dtype):
    """The case's mask with the ALiBi bias added, in the dtype under test: ``-inf`` where a bool mask drops a key."""
    L, S = inputs.query.shape[-2], inputs.key.shape[-2]
    offset = 0 if alignment == "top-left" else S - L
    bias = alibi_bias(inputs.keywords["alibi_slopes"], L, S, offset)  # (*slopes, L, S)
    mask = inputs.attn_mask
    if mask is None:
        return round_to(bias, dtype)
    if mask.dtype == np.bool_:
        return round_to(np.where(mask, bias, -np.inf), dtype)
    return round_to(bias + mask.astype(np.float64), dtype)


@check("alibi.float-mask", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, variants={"alibi": {}}),
       requires=REQUIRES + (needs("float_mask", "float masks"), needs("mask_batch", "masks per batch entry")),
       variant="alibi")
def float_mask(backend, case, context):
    """The call with alibi_slopes gives the output of the call with the float mask -m_h |i + o - j| added instead."""
    biased = case.build()
    masked = biased.without("alibi").replace(attn_mask=_as_float_mask(biased, backend.declaration.alignment, case.dtype))
    against(backend, case, biased, masked, "the output with alibi_slopes (against the output with the float mask "
                                           "-m_h |i + o - j| and no slopes)")


@check("alibi.per-row-form", "sdpa", cases(masks=("none", "bool"), values=BOTH_SIDES, min_length=2,
                                           variants={"alibi": {}}),
       requires=REQUIRES + (needs_non_causal,), variant="alibi")
def per_row_form(backend, case, context):
    """Without a causal mask the keys after the query get -m_h (j - i - o) too, not the per-row form's +m_h j."""
    judge(backend, case)


def heads_rotated(backend, case, what: str) -> None:
    """Rotating the heads of query, key, value, mask and the variants' per-head parameters by one rotates the
    output's heads alike; ``what`` names the parameters that move (their slopes)."""
    first = case.build()
    if "gqa" in dict(first.variants):
        first = without_grouping(first)  # (..., H_q, S, .): every head moves alone
    order = np.roll(np.arange(first.query.shape[-3]), 1)  # new head h is old head order[h]
    against(backend, case, first.heads_moved(order), first,
            f"the output after moving the heads {order.tolist()} with {what} (against the output with its "
            f"heads moved alike)", heads=order)


@check("alibi.head-order", "sdpa", cases(masks=MASKS, causal=(False, True), values=BOTH_SIDES,
                                         variants={"alibi": {"least_heads": 3}}), requires=REQUIRES, variant="alibi")
def head_order(backend, case, context):
    """Rotating the heads of query, key, value, mask and slopes by one rotates the output's heads alike (3 heads or
    more: reversed slopes, or slopes read from another head, do not follow)."""
    heads_rotated(backend, case, "their slopes")
