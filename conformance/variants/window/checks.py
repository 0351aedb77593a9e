"""The checks of sliding-window attention (clauses ``window.*``), for backends that declare ``window``.

Each draws cases that use the variant with every mask, causal flag, value profile and scale the
backend takes (and the other variants it declares, now and then): agreement with the reference,
the causal rule as the window ``(None, 0)``, a window wider than the sequences as no window, and
keys outside a row's window that cannot move it.
"""

from __future__ import annotations

import numpy as np

from ...kinds.sdpa.call import against, expectation, fresh, judge, output
from ...kinds.sdpa.case import MASKS, VALUES
from ...kinds.sdpa.strategy import cases
from ...registry import agree, check, needs, needs_non_causal, needs_variant
from . import keeps

REQUIRES = (needs_variant("window"),)


@check("window.index-rule", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True,
                                          variants={"window": {}}), requires=REQUIRES, variant="window")
def index_rule(backend, case, context):
    """Query i keeps the keys from i + o - left to i + o + right, with every mask and alignment."""
    judge(backend, case)


@check("window.causal", "sdpa", cases(masks=("none", "bool"), values=VALUES, variants={"window": {"fixed": (None, 0)}}),
       requires=REQUIRES + (needs("causal", "is_causal"), needs_non_causal), variant="window")
def causal(backend, case, context):
    """window=(None, 0) gives the output of is_causal=True."""
    windowed = case.build()
    plain = windowed.without("window").replace(is_causal=True)
    against(backend, case, windowed, plain, "the output with window=(None, 0) (against the output with "
                                             "is_causal=True and no window)")


@check("window.no-window", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES,
                                         variants={"window": {"wide": True}}), requires=REQUIRES, variant="window")
def no_window(backend, case, context):
    """A window of at least max(L, S) - 1 keys on each side gives the output without a window."""
    windowed = case.build()
    against(backend, case, windowed, windowed.without("window"),
             f"the output with window={case.variant('window')} (against the output without a window)")


@check("window.outside-keys", "sdpa", cases(masks=("none", "bool"), causal=(False, True), min_length=2,
                                            variants={"window": {}}), requires=REQUIRES, variant="window")
def outside_keys(backend, case, context):
    """Keys and values outside a row's window can change, 10 times larger, without moving the row."""
    first = case.build()
    kept = keeps(case.variant("window"), case)  # (L, S)
    row = int(np.random.default_rng([case.seed, 81]).integers(case.L))
    outside = ~kept[row]  # (S,): the keys row `row` does not see
    if not outside.any():
        return  # the row's window holds every key: nothing to change
    rows = np.flatnonzero(~(kept & outside).any(axis=-1))  # the rows that see none of the changed keys
    key, value = np.array(first.key, copy=True), np.array(first.value, copy=True)
    key[..., outside, :] = fresh(case, key[..., outside, :].shape, 82, magnitude=10.0)
    value[..., outside, :] = fresh(case, value[..., outside, :].shape, 83, magnitude=10.0)
    second = first.replace(key=key, value=value)
    out1, e1 = output(backend, first), expectation(backend, first, case)
    out2, e2 = output(backend, second), expectation(backend, second, case)
    agree(out2[..., rows, :], out1[..., rows, :], e1.bound[..., rows, :] + e2.bound[..., rows, :],
          what=f"rows {rows.tolist()} after changing the keys and values {np.flatnonzero(outside).tolist()} outside "
               f"their windows")

