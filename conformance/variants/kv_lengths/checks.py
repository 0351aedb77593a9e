"""The checks of key lengths (clauses ``lengths.*``), for backends that declare ``kv_lengths``.

Each draws cases that use the variant with every mask, causal flag, value profile and scale the
backend takes (and the other variants it declares, now and then): agreement with the reference,
the causal offset of each entry, lengths of ``S`` as no lengths, padding that cannot move the
output, and entries of length 0 that follow the convention of a fully masked row.
"""

from __future__ import annotations

import numpy as np

from ...dtypes import LARGEST, round_to
from ...kinds import masked_rows
from ...kinds.sdpa.accuracy import fully_masked_row
from ...kinds.sdpa.call import against, expectation, fresh, judge, output
from ...kinds.sdpa.case import MASKS, VALUES
from ...kinds.sdpa.strategy import cases
from ...registry import agree, check, needs, needs_variant

def _needs_entries(declaration) -> str | None:
    if any(count >= 2 for count in declaration.batch_dims):
        return None
    return "the backend declares no inputs (..., B, H, L, E): kv_lengths needs the batch axis before the heads"


REQUIRES = (needs_variant("kv_lengths"), _needs_entries)


@check("lengths.index-rule", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True,
                                              variants={"kv_lengths": {}}), requires=REQUIRES, variant="kv_lengths")
def index_rule(backend, case, context):
    """Batch entry b keeps its first n_b keys, with every mask, alignment and value profile."""
    judge(backend, case)


@check("lengths.offset", "sdpa", cases(masks=("none", "bool"), causal=(True,), min_length=2,
                                          variants={"kv_lengths": {"any_offset": True}}),
       requires=REQUIRES + (needs("causal", "is_causal"),), variant="kv_lengths")
def offset(backend, case, context):
    """Under is_causal each entry is aligned by its own length (bottom-right: offset n_b - L)."""
    judge(backend, case)


@check("lengths.full", "sdpa", cases(masks=MASKS, causal=(False, True), values=VALUES,
                                        variants={"kv_lengths": {"full": True}}), requires=REQUIRES,
       variant="kv_lengths")
def full(backend, case, context):
    """Lengths of S give the output of the call without kv_lengths."""
    with_lengths = case.build()
    against(backend, case, with_lengths, with_lengths.without("kv_lengths"),
            what=f"the output with kv_lengths={list(case.variant('kv_lengths'))} = S (against the output without)")


@check("lengths.padding", "sdpa", cases(masks=("none", "bool"), causal=(False, True), min_length=2,
                                           variants={"kv_lengths": {}}), requires=REQUIRES, variant="kv_lengths")
def padding(backend, case, context):
    """The padding keys and values of each entry can change, to huge values, without moving its output."""
    first = case.build()
    lengths = case.variant("kv_lengths")
    if lengths is None:
        return  # the case leaves no room for lengths (a window that needs more keys than S)
    padded = np.arange(case.S)[None, :] >= np.array(lengths)[:, None]  # (B, S): entry b's padding keys
    if not padded.any():
        return  # every entry is full: no padding to change
    where = padded[:, None, :]  # (B, 1, S): against the heads of (..., B, H, S, .)
    key, value = np.array(first.key, copy=True), np.array(first.value, copy=True)
    huge = LARGEST[case.dtype] / (8 * case.S)
    new_key = fresh(case, key.shape, 91, magnitude=10.0)
    new_value = round_to(np.sign(fresh(case, value.shape, 92).astype(np.float64)) * huge, case.dtype)
    key = np.where(where[..., None], new_key, key)
    value = np.where(where[..., None], new_value, value)
    second = first.replace(key=key, value=value)
    out1, e1 = output(backend, first), expectation(backend, first, case)
    out2, e2 = output(backend, second), expectation(backend, second, case)
    agree(out2, out1, e1.bound + e2.bound,
          what=f"the output after replacing the padding keys and values (kv_lengths={list(lengths)}, S = {case.S}) "
               f"by keys 10 times larger and values +-{huge:.3g}")


@check("lengths.empty-row", "sdpa", cases(masks=("none", "bool"), causal=(False, True),
                                             values=("normal", "large-values"), variants={"kv_lengths": {"empty": True}},
                                             whole_rows=True),
       requires=REQUIRES, variant="kv_lengths", finish=masked_rows.finish)
def empty_row(backend, case, context):
    """The rows of an entry of length 0 follow the backend's fully-masked-row convention; the others are accurate."""
    fully_masked_row(backend, case, context)
