"""sdpa checks that compare the output with the float64 reference, one feature at a time.

Each draws the cases where its clause is what matters (the default scale, an explicit scale, bool
masks, additive masks, each causal alignment, scores past exp's overflow, every value profile),
so a backend that breaks one formula fails the clause that states it.
"""

from __future__ import annotations

import numpy as np

from ...registry import CheckFailure, agree, check, needs, needs_alignment
from ...declaration import MASKED_ROWS
from ...messages import nonfinite
from .. import masked_rows
from .call import expectation, judge, output
from .case import VALUES
from .strategy import cases

MASKS = ("none", "bool", "float")
EXTREME = ("large", "huge", "far-apart")


@check("attention.sdpa", "sdpa", cases(masks=MASKS, causal=(False, True), scales=True))
def formula(backend, case, context):
    """softmax(s Q K^T + M) V on normal values, with every mask kind, causal flag and scale the backend takes."""
    judge(backend, case)


@check("scores.scale.default", "sdpa", cases(min_width=2), foundation=True)
def default_scale(backend, case, context):
    """Without a scale argument the scores are scaled by 1/sqrt(E) (E >= 2, no mask)."""
    judge(backend, case)


@check("scores.scale.explicit", "sdpa", cases(scales="always", min_width=2),
       requires=(needs("scale", "explicit scale"),))
def explicit_scale(backend, case, context):
    """An explicit scale replaces 1/sqrt(E)."""
    judge(backend, case)


@check("mask.bool", "sdpa", cases(masks=("bool",), causal=(False, True)),
       requires=(needs("bool_mask", "bool masks"),))
def bool_mask(backend, case, context):
    """A bool attn_mask keeps the keys marked True, with every mask shape the backend takes."""
    judge(backend, case)


@check("mask.additive", "sdpa", cases(masks=("float",), causal=(False, True)),
       requires=(needs("float_mask", "float masks"),))
def additive_mask(backend, case, context):
    """A float attn_mask (finite biases and -inf) is added to the scores."""
    judge(backend, case)


_causal_cases = cases(masks=("none", "bool"), causal=(True,))


@check("mask.causal.top-left", "sdpa", _causal_cases, requires=(needs_alignment("top-left"),))
def causal_top_left(backend, case, context):
    """is_causal keeps key j for query i iff j <= i, also when L != S."""
    judge(backend, case)


@check("mask.causal.bottom-right", "sdpa", _causal_cases, requires=(needs_alignment("bottom-right"),))
def causal_bottom_right(backend, case, context):
    """is_causal keeps key j for query i iff j <= i + S - L (declared bottom-right alignment)."""
    judge(backend, case)


@check("softmax.stable", "sdpa", cases(values=EXTREME, masks=MASKS, causal=(False, True)))
def stable_softmax(backend, case, context):
    """Scores past where a naive exp overflows, and rows far apart, still give the right weights."""
    judge(backend, case)


@check("attention.finite", "sdpa", cases(values=VALUES, masks=MASKS, causal=(False, True), scales=True),
       numeric=False)
def finite(backend, case, context):
    """Every query row that keeps a key gets a finite output, whatever the finite inputs."""
    inputs = case.build()
    result = output(backend, inputs)
    judged = expectation(backend, inputs, case)
    wanted = np.isfinite(judged.expected)
    bad = wanted & ~np.isfinite(result)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CheckFailure(nonfinite(int(bad.sum()), result.size, where, result[where], judged.expected[where]))


@check("attention.accuracy", "sdpa", cases(values=VALUES, masks=MASKS, causal=(False, True), scales=True))
def accuracy(backend, case, context):
    """Within the forward-error bound on every value profile (ties, zeros, identical keys, tiny and large values)."""
    judge(backend, case)


@check("attention.tile-boundaries", "sdpa", cases(masks=MASKS, causal=(False, True), every_tile=True),
       examples=lambda profile: profile.tile_clause_examples)
def tile_boundaries(backend, case, context):
    """L, S, E and Ev on either side of tile sizes, masks meeting the tiles, the causal diagonal across a tile edge."""
    judge(backend, case)


def rows_can_empty(declaration) -> str | None:
    if declaration.bool_mask or declaration.float_mask:
        return None
    if declaration.causal and declaration.alignment == "bottom-right" and declaration.cross_lengths:
        return None
    return "the backend declares no masks and no bottom-right causal alignment: no row can lose every key"


@check("mask.fully-masked-row", "sdpa",
       cases(masks=("bool", "float"), causal=(False, True), empty_rows=True, values=("normal", "large-values"),
             whole_rows=True),
       requires=(rows_can_empty,), finish=masked_rows.finish)
def fully_masked_row(backend, case, context):
    """Rows that keep no key follow the declared convention (zeros, nan or uniform); the others are accurate."""
    inputs = case.build()
    result = output(backend, inputs)
    expectations = {convention: expectation(backend, inputs, case, masked_rows=convention)
                    for convention in MASKED_ROWS}
    judged = expectations["zeros"]
    matched = masked_rows.observe(result, judged.empty, expectations, context, case)
    rows = np.broadcast_to(judged.empty[..., None], result.shape)
    agree(np.where(rows, 0.0, result), judged.expected, judged.bound, what="the output rows that keep a key")
    masked_rows.judge_masked_rows(result, judged.empty, matched, backend.declaration)
