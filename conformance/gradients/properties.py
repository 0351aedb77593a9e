"""Gradient checks of the backward pass's properties: the backend's gradients compared with themselves under a change.

Each property says how the exact gradients change when the inputs or ``dO`` change (a linear combination of
upstream gradients, keys no query keeps, later keys and values, grouped heads repeated); the backend's two sets of
gradients must relate in the same way within the sum of their bounds plus the reference's own departure from the
exact relation, which only the rounding of the changed inputs to the dtype can cause.
"""

from __future__ import annotations

import numpy as np

from kqv.reference.backward_stages import fold_heads

from ..dtypes import UNIT_ROUNDOFF, round_to
from ..kinds.sdpa.bound import prepared
from ..kinds.sdpa.call import fresh
from ..kinds.sdpa.case import VALUES
from ..kinds.sdpa.properties import kept_in_each_row, later_keys_changed, masked_for_every_query
from ..kinds.sdpa.strategy import cases
from ..registry import check, needs, needs_batch, needs_some_mask, needs_variant
from ..variants.gqa import without_grouping
from ..variants.gqa.checks import GROUPED
from .accuracy import FACET, REQUIRES
from .call import HEADROOM, NAMES, agree_gradient, expectation, gradients, upstream

MASKS = ("none", "bool", "float")
U64 = UNIT_ROUNDOFF["float64"]


def _rng(case, salt):
    return np.random.default_rng([case.seed, salt])


def _differentiated(backend, case, inputs, grad_output):
    """``(got, expected, bound)`` of one backward pass."""
    return (gradients(backend, inputs, grad_output),) + expectation(backend, inputs, grad_output, case)


@check("gradient.linearity", "sdpa", cases(masks=MASKS, causal=(False, True), values=("normal", "large-values")),
       requires=REQUIRES, variant=FACET)
def linearity(backend, case, context):
    """The gradients of a dO1 + b dO2 are a times those of dO1 plus b times those of dO2."""
    inputs = case.build()
    rng = _rng(case, 91)
    a, b = (float(rng.choice([-1.0, 1.0]) * 10 ** rng.uniform(-1, 1)) for _ in range(2))
    room = HEADROOM * (abs(a) + abs(b))  # a dO1 + b dO2 must leave the room of one dO
    first, second = upstream(case, inputs, headroom=room), upstream(case, inputs, salt=92, headroom=room)
    combined = round_to(a * first.astype(np.float64) + b * second.astype(np.float64), case.dtype)
    got1, e1, b1 = _differentiated(backend, case, inputs, first)
    got2, e2, b2 = _differentiated(backend, case, inputs, second)
    got3, e3, b3 = _differentiated(backend, case, inputs, combined)
    for name in NAMES:
        g1, g2 = getattr(got1, name), getattr(got2, name)
        mix = a * g1 + b * g2
        bound = abs(a) * getattr(b1, name) + abs(b) * getattr(b2, name) + getattr(b3, name) \
            + np.abs(getattr(e3, name) - (a * getattr(e1, name) + b * getattr(e2, name))) \
            + 4 * U64 * (np.abs(a * g1) + np.abs(b * g2))
        agree_gradient(name, getattr(got3, name), mix, bound, case.dtype,
                       f" for a dO1 + b dO2 (a = {a:.6g}, b = {b:.6g}) against a g(dO1) + b g(dO2)")


@check("gradient.unkept-key", "sdpa", cases(masks=("bool", "float"), causal=(False, True), values=("normal", "large"),
                                            min_length=2),
       requires=REQUIRES + (needs_some_mask,), variant=FACET)
def unkept_key(backend, case, context):
    """Keys that no query keeps (masked for every row, or past every row's causal limit) get dK = 0 and dV = 0, even
    with values a thousand times larger."""
    inputs = case.build()
    kept = kept_in_each_row(case)
    masked = (_rng(case, 93).random(case.S) < 0.5) & ~np.isin(np.arange(case.S), kept)  # (S,): masked for every query
    # A causal case of a backend that takes no mask with is_causal has none: its unkept keys are the causal ones.
    changed = inputs if inputs.attn_mask is None else masked_for_every_query(inputs, masked, kept)
    value = np.array(changed.value, copy=True)
    value[..., masked, :] = fresh(case, value[..., masked, :].shape, 94, magnitude=1e3)
    changed = changed.replace(value=value)
    keep = prepared(changed, backend.declaration.alignment).kept()  # (*batch, L, S)
    unkept = ~np.any(keep.reshape(-1, case.S), axis=0)  # (S,): no row of any entry keeps the key
    if not unkept.any():
        return
    got, expected, bound = _differentiated(backend, case, changed, upstream(case, changed))
    about = f" at the keys {np.flatnonzero(unkept).tolist()}, which no query keeps"
    for name in ("key", "value"):
        agree_gradient(name, getattr(got, name)[..., unkept, :], getattr(expected, name)[..., unkept, :],
                       getattr(bound, name)[..., unkept, :], case.dtype, about)


@check("gradient.causal", "sdpa", cases(masks=("none", "bool"), causal=(True,), values=VALUES, min_length=2),
       requires=REQUIRES + (needs("causal", "is_causal"),), variant=FACET)
def causal(backend, case, context):
    """With is_causal, dQ of row i does not change when the keys and values after its last visible key, and the
    other rows of dO, change."""
    first = case.build()
    second, cut, rows = later_keys_changed(case, first, backend.declaration.alignment, 95)
    upstream1 = upstream(case, first)
    upstream2 = np.array(upstream1, copy=True)
    others = np.setdiff1d(np.arange(case.L), rows)
    upstream2[..., others, :] = upstream(case, first, salt=98)[..., others, :]
    got1, e1, b1 = _differentiated(backend, case, first, upstream1)
    got2, e2, b2 = _differentiated(backend, case, second, upstream2)
    agree_gradient("query", got2.query[..., rows, :], got1.query[..., rows, :],
                   b1.query[..., rows, :] + b2.query[..., rows, :]
                   + np.abs(e2.query[..., rows, :] - e1.query[..., rows, :]), case.dtype,
                   f" of rows {rows.tolist()} after changing keys and values {cut}..{case.S - 1} and the rows "
                   f"{others.tolist()} of dO")


@check("gradient.group-sum", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True,
                                           variants=GROUPED),
       requires=REQUIRES + (needs_variant("gqa"), needs_batch), variant=FACET)
def group_sum(backend, case, context):
    """With enable_gqa, dK and dV of each key/value head are the sums over its group of query heads of the gradients
    of the call on K and V repeated in place without it; dQ is the same."""
    grouped = case.build()
    plain = without_grouping(grouped)
    upstream1 = upstream(case, grouped)
    got1, e1, b1 = _differentiated(backend, case, grouped, upstream1)
    got2, e2, b2 = _differentiated(backend, case, plain, upstream1)
    heads = grouped.key.shape[-3]
    for name in NAMES:
        fold = (lambda x: x) if name == "query" else (lambda x: fold_heads(x, heads))
        agree_gradient(name, getattr(got1, name), fold(getattr(got2, name)),
                       getattr(b1, name) + fold(getattr(b2, name))
                       + np.abs(getattr(e1, name) - fold(getattr(e2, name))), case.dtype,
                       f" with enable_gqa (H_kv = {heads}) against the sum over each group of the gradients on K "
                       f"and V repeated in place")
