"""sdpa checks of the spec's properties: the backend is compared with itself under a transformation.

Each property says how the exact output changes when the inputs change (a permutation, a linear
combination of values, a change of masked keys, of later keys, of other batch entries, of a
constant added to a row). The backend's two outputs must relate in the same way within the sum of
their two bounds plus the reference's own departure from the exact relation, which only the
rounding of the transformed inputs to the dtype can cause.
"""

from __future__ import annotations

import numpy as np

from ...registry import CheckFailure, agree, check, needs, needs_batch, needs_non_causal, needs_some_mask
from ...dtypes import LARGEST, UNIT_ROUNDOFF, round_to
from ...messages import outside_range
from .call import expectation, fresh, output
from .case import VALUES, variant_keeps
from .strategy import cases

MASKS = ("none", "bool", "float")
U64 = UNIT_ROUNDOFF["float64"]


def _rng(case, salt):
    return np.random.default_rng([case.seed, salt])


def _both(backend, case, first, second):
    """Outputs and expectations of two calls."""
    return (output(backend, first), expectation(backend, first, case),
            output(backend, second), expectation(backend, second, case))


def kept_in_each_row(case) -> np.ndarray:
    """``(L,)`` int: a key each query row keeps whatever the mask (key 0, or one its window keeps)."""
    limits = variant_keeps(case)  # (L, S): the keys a window keeps, or None
    return np.zeros(case.L, dtype=np.int64) if limits is None else np.argmax(limits, axis=-1)


def masked_for_every_query(inputs, masked: np.ndarray, kept: np.ndarray):
    """The call with the keys ``masked`` (``(S,)`` bool) dropped by its mask for every query and key ``kept[i]``
    (``(L,)`` int, none of them masked) kept by query ``i``."""
    mask = np.array(inputs.attn_mask, copy=True)
    rows = np.arange(kept.size)
    if mask.dtype == np.bool_:
        mask[..., masked] = False
        mask[..., rows, kept] = True
    else:
        mask[..., masked] = -np.inf
        mask[..., rows, kept] = np.where(np.isfinite(mask[..., rows, kept]), mask[..., rows, kept], 0)
    return inputs.replace(attn_mask=mask)


@check("mask.zero-weight", "sdpa", cases(masks=("bool", "float"), values=("normal", "large"), min_length=2),
       requires=(needs_some_mask,))
def zero_weight(backend, case, context):
    """Keys masked for every query cannot move the output, even when their values are huge."""
    inputs = case.build()
    rng = _rng(case, 11)
    kept = kept_in_each_row(case)
    masked = rng.random(case.S) < 0.5  # (S,): the keys masked for every query
    masked[kept] = False
    if not masked.any():
        free = np.setdiff1d(np.arange(case.S), kept)
        if not free.size:
            return  # every key is some row's one kept key: none can be masked for all
        masked[free[-1]] = True
    first = masked_for_every_query(inputs, masked, kept)
    value, key = np.array(first.value, copy=True), np.array(first.key, copy=True)
    huge = LARGEST[case.dtype] / (8 * case.S)
    value[..., masked, :] = round_to(np.sign(fresh(case, value[..., masked, :].shape, 12).astype(np.float64)) * huge,
                                     case.dtype)
    key[..., masked, :] = fresh(case, key[..., masked, :].shape, 13, magnitude=10.0)
    out1, e1, out2, e2 = _both(backend, case, first, first.replace(value=value, key=key))
    agree(out2, out1, e1.bound + e2.bound,
          what=f"the output after replacing the values of masked keys {np.flatnonzero(masked).tolist()} by +-{huge:.3g} "
               f"(and their keys)")


@check("output.convex-hull", "sdpa", cases(values=VALUES, masks=MASKS, causal=(False, True)))
def convex_hull(backend, case, context):
    """Each output element lies between the smallest and largest value its row attends to (and 0, with a sink:
    its weights sum to less than 1, clause sinks.mass)."""
    inputs = case.build()
    result = output(backend, inputs)
    judged = expectation(backend, inputs, case)
    value = np.broadcast_to(judged.value, result.shape[:-2] + judged.value.shape[-2:])  # (..., S, Ev), heads mapped
    kept = judged.keep[..., None]  # (..., L, S, 1)
    low = np.min(np.where(kept, value[..., None, :, :], np.inf), axis=-2)  # (..., L, Ev)
    high = np.max(np.where(kept, value[..., None, :, :], -np.inf), axis=-2)
    if case.variant("sinks") is not None:
        low, high = np.minimum(low, 0.0), np.maximum(high, 0.0)
    with np.errstate(invalid="ignore"):
        outside = ~((result >= low - judged.bound) & (result <= high + judged.bound))
    if outside.any():
        where = tuple(int(i) for i in np.argwhere(outside)[0])
        raise CheckFailure(outside_range(int(outside.sum()), result.size, where, result[where], low[where], high[where],
                                         judged.bound[where]))


@check("output.linear-in-value", "sdpa", cases(masks=MASKS, causal=(False, True)))
def linear_in_value(backend, case, context):
    """Attention(Q, K, a V1 + b V2) = a Attention(Q, K, V1) + b Attention(Q, K, V2)."""
    first = case.build()
    rng = _rng(case, 21)
    a, b = (float(rng.choice([-1.0, 1.0]) * 10 ** rng.uniform(-1, 1)) for _ in range(2))
    second = first.replace(value=fresh(case, first.value.shape, 22))
    combined = first.replace(value=round_to(a * first.value.astype(np.float64) + b * second.value.astype(np.float64),
                                            case.dtype))
    out1, e1, out2, e2 = _both(backend, case, first, second)
    out3, e3 = output(backend, combined), expectation(backend, combined, case)
    mix = a * out1 + b * out2
    bound = abs(a) * e1.bound + abs(b) * e2.bound + e3.bound \
        + np.abs(e3.expected - (a * e1.expected + b * e2.expected)) + 4 * U64 * (np.abs(a * out1) + np.abs(b * out2))
    agree(out3, mix, bound, what=f"the output for a V1 + b V2 (a = {a:.6g}, b = {b:.6g}) against a O1 + b O2")


def _permute(inputs, axis_name, order):
    if axis_name == "queries":
        mask = None if inputs.attn_mask is None else inputs.attn_mask[..., order, :]
        return inputs.replace(query=inputs.query[..., order, :], attn_mask=mask)
    mask = None if inputs.attn_mask is None else inputs.attn_mask[..., order]
    return inputs.replace(key=inputs.key[..., order, :], value=inputs.value[..., order, :], attn_mask=mask)


@check("attention.permutation.queries", "sdpa", cases(masks=MASKS, values=VALUES, min_length=2, permuted=True),
       requires=(needs_non_causal,))
def permutation_queries(backend, case, context):
    """Permuting the query rows (and the mask rows) permutes the output rows."""
    first = case.build()
    order = _rng(case, 31).permutation(case.L)
    out1, e1, out2, e2 = _both(backend, case, first, _permute(first, "queries", order))
    bound = e1.bound[..., order, :] + e2.bound + np.abs(e2.expected - e1.expected[..., order, :])
    agree(out2, out1[..., order, :], bound, what=f"the output for the queries in the order {order.tolist()} (against "
                                                  f"the permuted output)")


@check("attention.permutation.keys", "sdpa", cases(masks=MASKS, values=VALUES, min_length=2, permuted=True),
       requires=(needs_non_causal,))
def permutation_keys(backend, case, context):
    """Permuting keys, values and mask columns together changes nothing."""
    first = case.build()
    order = _rng(case, 32).permutation(case.S)
    out1, e1, out2, e2 = _both(backend, case, first, _permute(first, "keys", order))
    agree(out2, out1, e1.bound + e2.bound + np.abs(e2.expected - e1.expected),
          what=f"the output for the keys and values in the order {order.tolist()}")


# The variants stay out: changing batch entry 0 of a grouped-query case would need its head mapping.
@check("attention.batch-independence", "sdpa",
       cases(masks=MASKS, causal=(False, True), values=VALUES, min_batch_dims=1, min_first_batch=2,
             other_variants=False),
       requires=(needs_batch,))
def batch_independence(backend, case, context):
    """Batch entry 0 does not change when the other entries change, to huge values or to NaN."""
    first = case.build()
    arrays = {}
    for name in ("query", "key", "value"):
        changed = np.array(getattr(first, name), copy=True)
        changed[1:] = fresh(case, changed[1:].shape, 41 + len(arrays), magnitude=1e3 if name == "query" else 1.0)
        arrays[name] = changed
    out1, e1, out2, e2 = _both(backend, case, first, first.replace(**arrays))
    agree(out2[0], out1[0], e1.bound[0] + e2.bound[0],
          what="batch entry 0 after the other entries changed (queries 1000 times larger)")
    poisoned = first.replace(**{name: _nan_after_first(getattr(first, name)) for name in ("query", "key", "value")})
    out3 = output(backend, poisoned)
    agree(out3[0], out1[0], 2 * e1.bound[0], what="batch entry 0 after the other entries became NaN")


def _nan_after_first(array):
    changed = np.array(array, copy=True)
    changed[1:] = np.nan
    return changed


def later_keys_changed(case, first, alignment: str, salt: int):
    """``(second, cut, rows)``: the causal call ``first`` with the keys and values from ``cut`` on redrawn (ten times
    larger; ``cut`` drawn with ``salt``), and the query rows whose visible keys all come before the cut."""
    offset = 0 if alignment == "top-left" else case.S - case.L
    rng = _rng(case, salt)
    cut = int(rng.integers(max(1, offset + 1), case.S)) if max(1, offset + 1) < case.S else case.S - 1
    rows = np.flatnonzero(np.arange(case.L) + offset < cut)  # rows whose visible keys all come before the cut
    key, value = np.array(first.key, copy=True), np.array(first.value, copy=True)
    key[..., cut:, :] = fresh(case, key[..., cut:, :].shape, salt + 1, magnitude=10.0)
    value[..., cut:, :] = fresh(case, value[..., cut:, :].shape, salt + 2, magnitude=10.0)
    return first.replace(key=key, value=value), cut, rows


@check("mask.causal.independence", "sdpa", cases(masks=("none", "bool"), causal=(True,), min_length=2),
       requires=(needs("causal", "is_causal"),))
def causal_independence(backend, case, context):
    """With is_causal, output row i does not change when keys and values after its last visible key change."""
    first = case.build()
    second, cut, rows = later_keys_changed(case, first, backend.declaration.alignment, 51)
    out1, e1, out2, e2 = _both(backend, case, first, second)
    agree(out2[..., rows, :], out1[..., rows, :], e1.bound[..., rows, :] + e2.bound[..., rows, :],
          what=f"rows {rows.tolist()} after changing keys and values {cut}..{case.S - 1}")


@check("softmax.rows-sum-to-one", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True,
                                                whole_rows=True))
def rows_sum_to_one(backend, case, context):
    """With every value 1 the output is 1: each row of weights sums to one."""
    first = case.build()
    ones = first.replace(value=round_to(np.ones(first.value.shape), case.dtype))
    judged = expectation(backend, ones, case)
    agree(output(backend, ones), judged.expected, judged.bound, what="the output with every value 1 (the row sums of "
                                                                     "the weights)")


@check("softmax.shift-invariance", "sdpa", cases(masks=("none", "float"), values=VALUES, whole_rows=True),
       requires=(needs("float_mask", "float masks"),))
def shift_invariance(backend, case, context):
    """Adding one constant to every score of a row (through the float mask) leaves the output unchanged."""
    first = case.build()
    base = first.attn_mask if first.attn_mask is not None else round_to(np.zeros((case.L, case.S)), case.dtype)
    rng = _rng(case, 61)
    constants = rng.choice([-1.0, 1.0], size=base.shape[:-1] + (1,)) * 10 ** rng.uniform(0, 2, base.shape[:-1] + (1,))
    shifted = round_to(base.astype(np.float64) + constants, case.dtype)
    out1, e1, out2, e2 = _both(backend, case, first.replace(attn_mask=base), first.replace(attn_mask=shifted))
    agree(out2, out1, e1.bound + e2.bound + np.abs(e2.expected - e1.expected),
          what="the output after adding a constant (between 1 and 100 in magnitude) to every score of each row")
