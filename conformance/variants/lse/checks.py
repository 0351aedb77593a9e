"""The checks of the log-sum-exp (clauses ``lse.*``), for backends that declare ``lse``.

Each draws cases that ask for the lse with every mask, causal flag, value profile and scale the
backend takes (and the other variants it declares, now and then): agreement with the reference's
lse within the bound of :func:`~kqv.conformance.kinds.sdpa.bound.lse_bound`, the weights the lse
rebuilds against the output the same call returns, ``-inf`` for rows that keep no key, and the
combination of the lse of two blocks of keys. Every call also checks the lse's shape and dtype.
"""

from __future__ import annotations

import numpy as np

from kqv.reference.sdpa import masked_scores

from ...compare import mismatch
from ...dtypes import name_of, round_to
from ...kinds.sdpa.bound import lse_expectation, prepared
from ...kinds.sdpa.call import expectation, output_and_lse
from ...kinds.sdpa.case import MASKS, VALUES, SdpaInputs
from ...kinds.sdpa.strategy import cases
from ...messages import lse_not_empty
from ...registry import CheckFailure, agree, check, needs, needs_some_mask, needs_variant
from ...tolerance import Precision

REQUIRES = (needs_variant("lse"),)
ASKED = {"lse": {}}
UNIT = 2.0**-53  # the rounding of kqv's own float64 arithmetic on the backend's numbers


def lse_of(backend, case, inputs: SdpaInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(output, lse, expected, bound)``: the backend's output (float64) and lse (as returned) and the reference's lse
    with its bound at the precision the lse came back in, ``(..., L)`` each; ``-inf`` expected where a row keeps no key."""
    got, lse = output_and_lse(backend, inputs)
    declaration = backend.declaration
    precision = Precision.of(case.dtype, declaration.accumulation)
    expected, bound = lse_expectation(inputs, precision, name_of(lse.dtype), declaration.alignment)
    return got, lse, expected, bound


def judge_lse(lse: np.ndarray, expected: np.ndarray, bound: np.ndarray) -> None:
    """Rows that keep no key have lse ``-inf`` exactly (clause ``lse.empty-row``); the others agree with the reference
    within the bound (clause ``lse.definition``)."""
    lse = np.asarray(lse, dtype=np.float64)
    empty = np.broadcast_to(expected == -np.inf, lse.shape)
    wrong = empty & (lse != -np.inf)
    if wrong.any():
        index = tuple(int(i) for i in np.argwhere(wrong)[0])
        raise CheckFailure(lse_not_empty(int(wrong.sum()), int(empty.sum()), index, float(lse[index])))
    found = mismatch(np.where(empty, 0.0, lse), np.where(empty, 0.0, expected), bound, what="the lse")
    if found is not None:
        raise CheckFailure(str(found))


@check("lse.definition", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True, variants=ASKED),
       requires=REQUIRES, variant="lse")
def definition(backend, case, context):
    """The lse is log sum_j exp(x_ij) over the kept keys, with every mask, alignment, value profile and scale."""
    _, lse, expected, bound = lse_of(backend, case, case.build())
    judge_lse(lse, expected, bound)


def _selector(S: int, Ev: int) -> tuple[np.ndarray, np.ndarray]:
    """``(picked, V)``: up to ``Ev`` keys spread over ``S`` (the first and the last among them) and the values
    ``(S, Ev)`` whose column f is 1 at key ``picked[f]``, 0 elsewhere: the output is then their weights."""
    picked = np.unique(np.linspace(0, S - 1, min(S, Ev)).round().astype(int))
    selector = np.zeros((S, Ev))
    selector[picked, np.arange(picked.size)] = 1.0  # (S, Ev): feature f reads key picked[f]
    return picked, selector


@check("lse.weights", "sdpa", cases(masks=MASKS, causal=(False, True), values=("normal", "large", "far-apart", "ties"),
                                    variants=ASKED), requires=REQUIRES, variant="lse")
def weights(backend, case, context):
    """With V picking out keys, the output of the call is exp(x_ij - lse_i) with the lse the same call returns and
    the reference's scores x: the lse rebuilds the weights."""
    inputs = case.build()
    S, Ev = inputs.key.shape[-2], inputs.value.shape[-1]
    picked, selector = _selector(S, Ev)
    value = round_to(np.broadcast_to(selector, inputs.value.shape), case.dtype)  # (..., S, Ev)
    probe = inputs.replace(value=np.ascontiguousarray(value))
    got, lse, expected, lse_error = lse_of(backend, case, probe)
    judged = expectation(backend, probe, case)
    x = masked_scores(prepared(probe, backend.declaration.alignment))[..., picked]  # (*batch, L, n)
    lse = np.asarray(lse, dtype=np.float64)[..., None]  # (..., L, 1)
    rows = np.isfinite(expected)[..., None]  # (..., L, 1): rows that keep a key
    with np.errstate(invalid="ignore", over="ignore"):
        rebuilt = np.where(rows, np.exp(x - lse), 0.0)  # (..., L, n): exp(x_ij - lse_i), 0 at dropped keys
    n = picked.size
    reference = np.broadcast_to(judged.weights[..., picked], rebuilt.shape)  # (..., L, n): p_ij
    # judged.bound already lets a weight below the accumulation's smallest normal come back 0 (2 eta_s per weight)
    bound = np.broadcast_to(judged.bound, got.shape)[..., :n] + reference * np.expm1(lse_error[..., None]) \
        + 2 * UNIT * reference
    agree(np.where(rows, got[..., :n], 0.0), rebuilt, np.where(rows, bound, 0.0),
          what=f"the output with V picking out keys {picked.tolist()} (against exp(x_ij - lse_i), the lse of the call)")


@check("lse.empty-row", "sdpa", cases(masks=("bool", "float"), causal=(False, True), empty_rows=True, variants=ASKED),
       requires=REQUIRES + (needs_some_mask,), variant="lse")
def empty_row(backend, case, context):
    """A row whose every key is masked has lse -inf (the log of the empty sum), whatever its output's convention;
    with a sink, the sink (the log of its term alone)."""
    _, lse, expected, bound = lse_of(backend, case, case.build())
    judge_lse(lse, expected, bound)


# whole_rows: with a sink each block's call would count it once, so their merge would count it twice.
@check("lse.combine", "sdpa", cases(values=("normal", "large", "far-apart"), min_length=2, variants=ASKED,
                                    whole_rows=True),
       requires=REQUIRES + (needs("bool_mask", "bool attn_mask"),), variant="lse")
def combine(backend, case, context):
    """The call on keys 0..h-1 and the call on keys h..S-1 (bool masks), merged as split-KV kernels merge them, give
    the call on all keys: lse = log(exp(a) + exp(b)), output = exp(a - lse) o_a + exp(b - lse) o_b."""
    whole = case.build()
    S, L = whole.key.shape[-2], whole.query.shape[-2]
    first = np.broadcast_to(np.arange(S) < S // 2, (L, S))  # (L, S): block a keeps keys 0 .. S/2 - 1
    parts = [whole.replace(attn_mask=np.ascontiguousarray(keep)) for keep in (first, ~first)]
    out, lse, expected, lse_error = lse_of(backend, case, whole)
    rows = np.isfinite(expected)  # (..., L): rows that keep a key (a side variant may leave one none)
    judged = expectation(backend, whole, case)
    merged_out = np.zeros_like(out)
    merged_bound = np.array(judged.bound, dtype=np.float64)
    terms = []
    for part in parts:
        o, a, a_expected, a_error = lse_of(backend, case, part)
        e = expectation(backend, part, case)
        kept = np.isfinite(a_expected)[..., None]  # (..., L, 1): rows the block leaves a key
        w = np.where(kept, np.exp(np.where(kept[..., 0], np.asarray(a, dtype=np.float64), 0.0)
                                  - np.asarray(lse, dtype=np.float64))[..., None], 0.0)  # (..., L, 1)
        merged_out = merged_out + np.where(kept, w * o, 0.0)
        spread = np.expm1(a_error + lse_error)[..., None]  # the relative error of w
        merged_bound = merged_bound + np.where(kept, w * (spread * (np.abs(o) + e.bound) + e.bound), 0.0)
        terms.append((np.where(kept[..., 0], np.asarray(a, dtype=np.float64), -np.inf), a_error))
    (a, a_error), (b, b_error) = terms
    merged_lse = np.where(rows, np.logaddexp(a, b), 0.0)  # (..., L)
    agree(np.where(rows, lse, 0.0), merged_lse, lse_error + np.maximum(a_error, b_error) + 4 * UNIT * np.abs(merged_lse),
          what=f"the lse of the call against log(exp(a) + exp(b)) of keys 0..{S // 2 - 1} and {S // 2}..{S - 1}")
    agree(np.where(rows[..., None], out, 0.0), np.where(rows[..., None], merged_out, 0.0),
          merged_bound + 4 * UNIT * np.abs(merged_out), what="the output against exp(a - lse) o_a + exp(b - lse) o_b")
