"""mha checks: multi-head attention in the seed's notation against the float64 reference.

The weight profiles isolate the clauses: with every head's projections equal the head order cannot
matter (``mha.head`` then sees only the per-head scale and softmax); with every head's block of
``W_O`` equal the concatenation order cannot matter (``mha.split``); with distinct heads and blocks
everything matters (``mha.concat``).
"""

from __future__ import annotations

import numpy as np

from ..backend import BackendError, invoke
from ..cases import MhaCase, MhaInputs
from ..declaration import MASKED_ROWS
from ..dtypes import as_float64, name_of
from ..strategies import mha_cases
from ..tolerance import Precision, mha_expectation
from . import masked_rows
from .registry import CheckFailure, check, needs, needs_alignment, needs_some_mask
from .sdpa_support import agree

NAMES = ("x_q", "x_kv", "w_q", "w_k", "w_v", "w_o")
ALL_BIASES = ("q", "k", "v", "o")


def call(backend, inputs: MhaInputs):
    kwargs = {f"b_{name}": getattr(inputs, f"b_{name}") for name in ALL_BIASES
              if getattr(inputs, f"b_{name}") is not None}
    kwargs["num_heads"] = inputs.num_heads
    if inputs.attn_mask is not None:
        kwargs["attn_mask"] = inputs.attn_mask
    if inputs.is_causal:
        kwargs["is_causal"] = True
    try:
        return invoke(backend, tuple(getattr(inputs, name) for name in NAMES), kwargs, NAMES)
    except BackendError as error:
        raise CheckFailure(str(error)) from None


def output(backend, inputs: MhaInputs) -> np.ndarray:
    result = call(backend, inputs).output
    shape = inputs.x_q.shape
    if result.shape != shape:
        raise CheckFailure(f"output shape {result.shape}, expected {shape} = (B, L, d_model)")
    return as_float64(result)


def expectation(backend, inputs: MhaInputs, case: MhaCase, convention: str | None = None):
    declaration = backend.declaration
    return mha_expectation(inputs, Precision.of(case.dtype, declaration.accumulation),
                           convention or declaration.masked_rows or "zeros", declaration.alignment)


def judge(backend, case: MhaCase) -> None:
    inputs = case.build()
    judged = expectation(backend, inputs, case)
    agree(output(backend, inputs), judged.expected, judged.bound)


def _cases(**options):
    return lambda d, dtype, p: mha_cases(d, dtype, p, **options)


GENERAL = dict(weights=("normal", "large"), biases=((), ALL_BIASES), masks=("none", "bool", "float"),
               causal=(False, True), self_attention=(False, True))


@check("attention.shape", "mha", _cases(**GENERAL))
def shape(backend, case, context):
    """x_q (B, L, d_model) and x_kv (B, S, d_model) give an output (B, L, d_model)."""
    output(backend, case.build())


@check("attention.dtype", "mha", _cases(**GENERAL))
def dtype(backend, case, context):
    """The output has x_q's dtype."""
    result = call(backend, case.build()).output
    if name_of(result.dtype) != case.dtype:
        raise CheckFailure(f"output dtype {name_of(result.dtype)} for {case.dtype} inputs, expected {case.dtype}")


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


@check("mha.single-head", "mha", _cases(max_heads=1, weights=("normal", "large")))
def single_head(backend, case, context):
    """With one head, multi-head attention is attention of the projections."""
    judge(backend, case)


@check("mha.cross-attention", "mha", _cases(cross=True, weights=("normal", "large")))
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


@check("mask.fully-masked-row", "mha", _cases(masks=("bool", "float"), empty_rows=True, self_attention=(False, True)),
       requires=(needs_some_mask,), finish=masked_rows.finish)
def fully_masked_row(backend, case, context):
    """Rows that keep no key follow the declared convention in every head; the others are accurate."""
    inputs = case.build()
    result = output(backend, inputs)
    expectations = {convention: expectation(backend, inputs, case, convention) for convention in MASKED_ROWS}
    judged = expectations["zeros"]
    empty = judged.empty  # (B, L)
    rows = np.broadcast_to(empty[..., None], result.shape)
    agree(np.where(rows, 0.0, result), np.where(rows, 0.0, judged.expected), judged.bound,
          what="the output rows that keep a key")
    masked_rows.judge_masked_rows(result, empty, expectations, backend.declaration, context, case)


@check("impl.determinism", "mha", _cases(**GENERAL), requires=(needs("deterministic", "determinism"),))
def determinism(backend, case, context):
    """Two calls on the same inputs give bitwise identical outputs."""
    inputs = case.build()
    if call(backend, inputs).output.tobytes() != call(backend, inputs).output.tobytes():
        raise CheckFailure("two calls on the same inputs gave different outputs")


@check("impl.inputs-unmodified", "mha", _cases(**GENERAL))
def inputs_unmodified(backend, case, context):
    """No input array is written to."""
    inputs = case.build()
    invocation = call(backend, inputs)
    changed = [name for name, native in invocation.natives.items()
               if not backend.adapter.unchanged(native, getattr(inputs, name))]
    if changed:
        raise CheckFailure(f"the backend wrote to its input(s) {', '.join(changed)}")
