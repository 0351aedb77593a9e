"""mha checks: multi-head attention in the seed's notation against the float64 reference.

The weight profiles isolate the clauses: with every head's projections equal the head order cannot
matter (``mha.head`` then sees only the per-head scale and softmax); with every head's block of
``W_O`` equal the concatenation order cannot matter (``mha.split``); with distinct heads and blocks
everything matters (``mha.concat``).
"""

from __future__ import annotations

import numpy as np

from ...registry import agree, check, needs, needs_alignment, needs_some_mask
from ...declaration import MASKED_ROWS
from .. import masked_rows
from .call import ALL_BIASES, expectation, judge, output
from .strategy import mha_cases


def _cases(**options):
    return lambda d, dtype, p: mha_cases(d, dtype, p, **options)


GENERAL = dict(weights=("normal", "large"), biases=((), ALL_BIASES), masks=("none", "bool", "float"),
               causal=(False, True), self_attention=(False, True))
general = _cases(**GENERAL)  # the cases of the checks every kind shares


def _projection(letter):
    def run(backend, case, context):
        judge(backend, case)
    run.__doc__ = f"{letter.upper()} = X W_{letter.upper()} + b_{letter.upper()}, with b_{letter.upper()} given."
    run.__name__ = f"projection_{letter}"
    return run


for _letter, _name in (("q", "query"), ("k", "key"), ("v", "value")):
    check(f"projection.{_name}", "mha", _cases(biases=((_letter,), ALL_BIASES)),
          requires=(needs("biases", "biases"),))(_projection(_letter))


@check("mha.split", "mha", _cases(min_heads=2, weights=("shared-output",)))
def split(backend, case, context):
    """Head i takes columns i*d_k:(i+1)*d_k (every head's block of W_O equal, so the order of concatenation is moot)."""
    judge(backend, case)


@check("mha.head", "mha", _cases(min_heads=2, weights=("identical-heads",)))
def head(backend, case, context):
    """Each head is attention scaled by 1/sqrt(d_k), d_k the head width (every head equal, so head order is moot)."""
    judge(backend, case)


@check("mha.concat", "mha", _cases(min_heads=2, weights=("normal", "large")))
def concat(backend, case, context):
    """The heads are concatenated in head order (distinct heads and distinct blocks of W_O)."""
    judge(backend, case)


@check("mha.output-projection", "mha", _cases(biases=(("o",), ALL_BIASES)), requires=(needs("biases", "biases"),))
def output_projection(backend, case, context):
    """MultiHead = Concat(heads) W_O + b_O."""
    judge(backend, case)


@check("mha.single-head", "mha", _cases(max_heads=1, weights=("normal", "large")), foundation=True)
def single_head(backend, case, context):
    """With one head, multi-head attention is attention of the projections."""
    judge(backend, case)


@check("mha.cross-attention", "mha", _cases(cross=True, weights=("normal", "large")),
       requires=(needs("cross_attention", "cross-attention, x_kv other than x_q"),))
def cross_attention(backend, case, context):
    """Queries come from x_q, keys and values from x_kv (L != S where the backend takes it)."""
    judge(backend, case)


@check("mask.bool", "mha", _cases(masks=("bool",), causal=(False, True)), requires=(needs("bool_mask", "bool masks"),))
def bool_mask(backend, case, context):
    """A bool attn_mask (B or 1, L, S) keeps the keys marked True, in every head."""
    judge(backend, case)


@check("mask.additive", "mha", _cases(masks=("float",), causal=(False, True)),
       requires=(needs("float_mask", "float masks"),))
def additive_mask(backend, case, context):
    """A float attn_mask is added to every head's scores."""
    judge(backend, case)


@check("mask.causal.top-left", "mha", _cases(causal=(True,), masks=("none", "bool")),
       requires=(needs_alignment("top-left"),))
def causal_top_left(backend, case, context):
    """is_causal keeps key j for query i iff j <= i, in every head."""
    judge(backend, case)


@check("attention.tile-boundaries", "mha", _cases(every_tile=True, masks=("none", "bool"), causal=(False, True),
                                                  weights=("normal", "large")),
       examples=lambda profile: profile.tile_clause_examples)
def tile_boundaries(backend, case, context):
    """d_k, d_model and the key length on either side of tile sizes (64, 128, ...), in every head."""
    judge(backend, case)


@check("mask.fully-masked-row", "mha", _cases(masks=("bool", "float"), empty_rows=True, self_attention=(False, True)),
       requires=(needs_some_mask,), finish=masked_rows.finish)
def fully_masked_row(backend, case, context):
    """Rows that keep no key follow the declared convention in every head; the others are accurate."""
    inputs = case.build()
    result = output(backend, inputs)
    expectations = {convention: expectation(backend, inputs, case, convention) for convention in MASKED_ROWS}
    judged = expectations["zeros"]
    empty = judged.empty  # (B, L)
    matched = masked_rows.observe(result, empty, expectations, context, case)
    rows = np.broadcast_to(empty[..., None], result.shape)
    agree(np.where(rows, 0.0, result), np.where(rows, 0.0, judged.expected), judged.bound,
          what="the output rows that keep a key")
    masked_rows.judge_masked_rows(result, empty, matched, backend.declaration)
