"""The checks of logit soft-capping (clauses ``softcap.*``), for backends that declare ``softcap``.

Each draws cases that use the variant with every mask, causal flag, value profile and scale the
backend takes (and the other variants it declares, now and then): agreement with the reference,
the bound the cap puts on the ratio of two weights, and masked keys that stay masked.
"""

from __future__ import annotations

import numpy as np

from ...dtypes import round_to
from ...kinds.sdpa.call import expectation, judge, output
from ...kinds.sdpa.case import MASKS, VALUES
from ...kinds.sdpa.properties import zero_weight
from ...kinds.sdpa.strategy import cases
from ...messages import below_cap_floor
from ...registry import CheckFailure, check, needs_some_mask, needs_variant

REQUIRES = (needs_variant("softcap"),)
BITING = {"softcap": {"caps": (0.5, 1.0, 2.0, 5.0)}}  # caps under which exp(-2c) is far above the rounding


@check("softcap.formula", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True,
                                        variants={"softcap": {"anywhere": True}}), requires=REQUIRES, variant="softcap")
def formula(backend, case, context):
    """Each score is c tanh(s q.k / c), with every mask, alignment, value profile and scale."""
    judge(backend, case)


@check("softcap.bounded", "sdpa", cases(masks=("none", "bool"), causal=(False, True),
                                        values=("large", "huge", "far-apart", "normal"), variants=BITING,
                                        unbiased=True),
       requires=REQUIRES, variant="softcap")
def bounded(backend, case, context):
    """With V picking out keys (column f is 1 at the f-th picked key, 0 elsewhere) the output is their weights, in the
    drawn shape: two kept keys of a row differ by a factor below exp(2c)."""
    inputs = case.build()
    S, Ev = inputs.key.shape[-2], inputs.value.shape[-1]
    picked = np.unique(np.linspace(0, S - 1, min(S, Ev)).round().astype(int))  # spread over S: first and last key
    selector = np.zeros((S, Ev))
    selector[picked, np.arange(picked.size)] = 1.0  # (S, Ev): feature f reads key picked[f]
    value = round_to(np.broadcast_to(selector, inputs.value.shape), case.dtype)  # (..., S, Ev)
    probe = inputs.replace(value=np.ascontiguousarray(value))
    got, judged = output(backend, probe), expectation(backend, probe, case)
    weights = got[..., :picked.size]  # (..., L, n): the weights of the picked keys
    bound = np.broadcast_to(judged.bound, got.shape)[..., :picked.size]
    kept = np.broadcast_to(judged.keep, judged.keep.shape[:-1] + (S,))[..., picked]  # (..., L, n)
    kept = np.broadcast_to(kept, weights.shape)
    floor = np.max(np.where(kept, weights - bound, -np.inf), axis=-1, keepdims=True) \
        * np.exp(-2 * case.variant("softcap"))  # (..., L, 1): the least weight the cap allows a picked key
    below = kept & (weights + bound < floor)
    if below.any():
        where = tuple(int(i) for i in np.argwhere(below)[0])
        raise CheckFailure(below_cap_floor(int(below.sum()), weights.size, where[:-1] + (int(picked[where[-1]]),),
                                           weights[where], floor[where[:-1] + (0,)], bound[where],
                                           case.variant("softcap")))


@check("softcap.order", "sdpa", cases(masks=("bool", "float"), values=("normal", "large"), min_length=2,
                                      variants={"softcap": {"anywhere": True}}), requires=REQUIRES + (needs_some_mask,),
       variant="softcap")
def order(backend, case, context):
    """Masked keys stay masked under the cap (it comes before the mask): their huge values cannot move the output."""
    zero_weight(backend, case, context)
