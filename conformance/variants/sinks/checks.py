"""The checks of attention sinks (clauses ``sinks.*``), for backends that declare ``sinks``.

Each draws cases that use the variant with every mask, causal flag, value profile and scale the
backend takes (and the other variants it declares, now and then): agreement with the reference,
the mass a sink leaves the keys, rows without a key that give 0 whatever the fully-masked-row
convention, sinks far below the scores (no sink) and far above (no output), and the sinks
following their heads when the heads are permuted.
"""

from __future__ import annotations

import numpy as np

from kqv.reference.prepare import prepare
from kqv.reference.sdpa import masked_scores

from ...dtypes import as_float64, round_to
from ...kinds.sdpa.accuracy import rows_can_empty
from ...kinds.sdpa.call import against, expectation, judge, output
from ...kinds.sdpa.case import MASKS, VALUES
from ...kinds.sdpa.properties import rows_sum_to_one
from ...kinds.sdpa.strategy import cases
from ...registry import agree, check, needs_batch, needs_variant
from ..alibi.checks import BOTH_SIDES, heads_rotated

REQUIRES = (needs_variant("sinks"), needs_batch)
BITING = (0.0, 1.0, -1.0, 2.0, -2.0)  # sinks among scores of a few units: each takes a visible share of its rows
GAP = 800.0  # past exp's range in every dtype: exp(-GAP) is 0 even in float64


@check("sinks.formula", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True,
                                      variants={"sinks": {}}), requires=REQUIRES, variant="sinks")
def formula(backend, case, context):
    """The sink of head h is one more term exp(sink_h - m) of the denominator, with every mask, alignment, value
    profile and scale."""
    judge(backend, case)


@check("sinks.mass", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True,
                                   variants={"sinks": {"levels": BITING}}), requires=REQUIRES, variant="sinks")
def mass(backend, case, context):
    """With every value 1 the output is each row's total weight, 1 - p_sink (sinks among the scores: p_sink shows)."""
    rows_sum_to_one(backend, case, context)


@check("sinks.empty-row", "sdpa", cases(masks=("bool", "float"), causal=(False, True), empty_rows=True,
                                        values=("normal", "large-values"), variants={"sinks": {}}),
       requires=REQUIRES + (rows_can_empty,), variant="sinks")
def empty_row(backend, case, context):
    """Rows that keep no key give exactly 0 with a sink, whatever the backend's fully-masked-row convention; the
    others are accurate."""
    inputs = case.build()
    result = output(backend, inputs)
    judged = expectation(backend, inputs, case)
    rows = np.broadcast_to(judged.empty[..., None], result.shape)
    agree(np.where(rows, result, 0.0), np.zeros(result.shape), np.zeros(result.shape),
          what="the output rows that keep no key (with a sink: 0, not the fully-masked-row convention)")
    agree(np.where(rows, 0.0, result), judged.expected, judged.bound, what="the output rows that keep a key")


def _past_the_scores(inputs, alignment: str, side: float) -> tuple[float, ...]:
    """A sink for each head :data:`GAP` beyond every kept score of the call, below (``side`` -1) or above (+1), exact
    in the dtype; the scores are the reference's stages 1 to 3 on the call without sinks."""
    mask = inputs.attn_mask
    mask = None if mask is None else (mask if mask.dtype == np.bool_ else as_float64(mask))
    call = prepare(*(as_float64(a) for a in (inputs.query, inputs.key, inputs.value)), mask, inputs.is_causal,
                   inputs.scale, causal_alignment=alignment, **inputs.without("sinks").keywords)
    x = masked_scores(call)  # (*batch, L, S): -inf where a key is dropped
    reach = float(np.max(np.abs(x[np.isfinite(x)]), initial=0.0))
    heads = inputs.query.shape[-3]
    return tuple(float(v) for v in as_float64(round_to(np.full(heads, side * (reach + GAP)), inputs.query.dtype.name)))


def _with_sinks(inputs, sinks: tuple[float, ...]):
    return inputs.replace(variants=inputs.without("sinks").variants + (("sinks", sinks),))


@check("sinks.limit", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, variants={"sinks": {}}),
       requires=REQUIRES, variant="sinks")
def limit(backend, case, context):
    """Sinks far below every score give the output without sinks; sinks far above give 0 (no overflow, no value)."""
    inputs = case.build()
    alignment = backend.declaration.alignment
    low = _with_sinks(inputs, _past_the_scores(inputs, alignment, -1.0))
    against(backend, case, low, low.without("sinks"),
            f"the output with sinks {GAP:g} below every score (against the output without sinks)")
    high = _with_sinks(inputs, _past_the_scores(inputs, alignment, 1.0))
    judged = expectation(backend, high, case)
    agree(output(backend, high), judged.expected, judged.bound,
          what=f"the output with sinks {GAP:g} above every score (the weights vanish: the output is 0 to within the "
               f"bound)")


@check("sinks.head-order", "sdpa", cases(masks=MASKS, causal=(False, True), values=BOTH_SIDES,
                                         variants={"sinks": {"least_heads": 3, "levels": BITING,
                                                             "spreads": (1.0, 5.0)}}),
       requires=REQUIRES, variant="sinks")
def head_order(backend, case, context):
    """Rotating the heads of query, key, value, mask and sinks by one rotates the output's heads alike (3 heads or
    more: reversed sinks, or sinks read from another head, do not follow)."""
    heads_rotated(backend, case, "their sinks")
