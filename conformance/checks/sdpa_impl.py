"""sdpa checks of what any implementation owes: shape, dtype, determinism, untouched and strided inputs."""

from __future__ import annotations

import numpy as np

from ..cases import VALUES
from ..dtypes import name_of
from ..strategies import sdpa_cases
from .registry import CheckFailure, check, needs
from .sdpa_support import NAMES, agree, call, expectation, output

MASKS = ("none", "bool", "float")


def _general(d, dtype, p):
    return sdpa_cases(d, dtype, p, masks=MASKS, causal=(False, True), scales=True, values=VALUES)


@check("attention.shape", "sdpa", _general)
def shape(backend, case, context):
    """query (..., L, E), key (..., S, E), value (..., S, Ev) give an output (..., L, Ev)."""
    output(backend, case.build())


@check("attention.dtype", "sdpa", _general)
def dtype(backend, case, context):
    """The output has the query's dtype."""
    result = call(backend, case.build()).output
    if name_of(result.dtype) != case.dtype:
        raise CheckFailure(f"output dtype {name_of(result.dtype)} for {case.dtype} inputs, expected {case.dtype}")


@check("impl.determinism", "sdpa", _general, requires=(needs("deterministic", "determinism"),))
def determinism(backend, case, context):
    """Two calls on the same inputs give bitwise identical outputs."""
    inputs = case.build()
    first, second = call(backend, inputs).output, call(backend, inputs).output
    if first.shape != second.shape or first.dtype != second.dtype or first.tobytes() != second.tobytes():
        differ = np.argwhere(~((first == second) | (np.isnan(first) & np.isnan(second)))) \
            if first.shape == second.shape else None
        where = f"; first difference at {tuple(int(i) for i in differ[0])}: {first[tuple(differ[0])]!r} then " \
                f"{second[tuple(differ[0])]!r}" if differ is not None and len(differ) else ""
        raise CheckFailure(f"two calls on the same inputs gave different outputs{where}")


@check("impl.inputs-unmodified", "sdpa", _general)
def inputs_unmodified(backend, case, context):
    """query, key, value and attn_mask hold the same values after the call."""
    inputs = case.build()
    invocation = call(backend, inputs)
    originals = dict(zip(NAMES, (inputs.query, inputs.key, inputs.value)), attn_mask=inputs.attn_mask)
    changed = [name for name, native in invocation.natives.items()
               if not backend.adapter.unchanged(native, originals[name])]
    if changed:
        raise CheckFailure(f"the backend wrote to its input(s) {', '.join(changed)}")


def _equal_entries(inputs):
    """Every batch entry along the first axis a copy of entry 0 (for stride-0 inputs)."""
    def first_entry(array):
        return np.ascontiguousarray(np.broadcast_to(array[:1], array.shape))
    return inputs.replace(query=first_entry(inputs.query), key=first_entry(inputs.key), value=first_entry(inputs.value))


@check("impl.strided-inputs", "sdpa", _general, requires=(needs("strided", "non-contiguous inputs"),))
def strided_inputs(backend, case, context):
    """Transposed, stepped, offset and stride-0 inputs give the output of contiguous copies."""
    inputs = case.build()
    plain = output(backend, inputs)
    judged = expectation(backend, inputs, case)
    for layout in ("transposed", "stepped", "offset"):
        agree(output(backend, inputs, layout), plain, 2 * judged.bound, what=f"the output for {layout} inputs (against "
                                                                             f"contiguous ones)")
    if case.batch and case.batch[0] > 1:
        same = _equal_entries(inputs)
        agree(output(backend, same, "expanded"), output(backend, same), 2 * expectation(backend, same, case).bound,
              what="the output for stride-0 (expanded) inputs (against contiguous ones)")
