"""The checks every kind shares, written once: shape, dtype, determinism, untouched and strided inputs.

Each is registered for each kind whose :attr:`~kqv.conformance.kinds.base.Kind.shared` names its
clause, and reaches the call through that :class:`~kqv.conformance.kinds.base.Kind`, so the same
fact is checked, and worded, the same way for ``sdpa``, ``mha`` and ``pe``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..dtypes import name_of
from ..messages import inputs_written, not_deterministic, wrong_dtype
from ..registry import CheckFailure, agree, check, needs

LAYOUTS = ("transposed", "stepped", "offset")  # the strided layouts of clause impl.strided-inputs


def _shape(kind):
    def shape(backend, case, context):
        kind.output(backend, kind.inputs(case))
    shape.__doc__ = f"The output has the contract's shape {kind.output_layout}."
    return shape


def _dtype(kind):
    def dtype(backend, case, context):
        result = kind.call(backend, kind.inputs(case)).output
        if name_of(result.dtype) != case.dtype:
            raise CheckFailure(wrong_dtype(name_of(result.dtype), case.dtype))
    dtype.__doc__ = f"The output has the dtype of {kind.leading}."
    return dtype


def _determinism(kind):
    def determinism(backend, case, context):
        """Two calls on the same inputs give bitwise identical outputs."""
        inputs = kind.inputs(case)
        first, second = kind.call(backend, inputs).output, kind.call(backend, inputs).output
        if first.shape != second.shape or first.dtype != second.dtype or first.tobytes() != second.tobytes():
            raise CheckFailure(not_deterministic(first, second))
    return determinism


def _inputs_unmodified(kind):
    def inputs_unmodified(backend, case, context):
        """No input array holds other values after the call."""
        inputs = kind.inputs(case)
        invocation = kind.call(backend, inputs)
        originals = kind.arrays(inputs)
        changed = [name for name, native in invocation.natives.items()
                   if not backend.adapter.unchanged(native, originals[name])]
        if changed:
            raise CheckFailure(inputs_written(changed))
    return inputs_unmodified


def _equal_entries(inputs, names):
    """Every batch entry along the first axis a copy of entry 0 (for stride-0 inputs)."""
    def first_entry(array):
        return np.ascontiguousarray(np.broadcast_to(array[:1], array.shape))
    return inputs.replace(**{name: first_entry(getattr(inputs, name)) for name in names})


def _strided_inputs(kind):
    def strided_inputs(backend, case, context):
        """Transposed, stepped, offset and stride-0 inputs give the output of contiguous copies."""
        inputs = kind.inputs(case)
        plain = kind.output(backend, inputs)
        judged = kind.expectation(backend, inputs, case)
        for layout in LAYOUTS:
            agree(kind.output(backend, inputs, layout), plain, 2 * judged.bound,
                  what=f"the output for {layout} inputs (against contiguous ones)")
        names = [name for name, array in kind.arrays(inputs).items() if name != "attn_mask" and array.ndim > 2]
        if case.batch and case.batch[0] > 1:
            same = _equal_entries(inputs, names)
            agree(kind.output(backend, same, "expanded"), kind.output(backend, same),
                  2 * kind.expectation(backend, same, case).bound,
                  what="the output for stride-0 (expanded) inputs (against contiguous ones)")
    return strided_inputs


# clause -> (the check made for a kind, what it needs from the declaration, foundation, numeric)
SHARED: dict[str, tuple[Callable, tuple, bool, bool]] = {
    "attention.shape": (_shape, (), True, False),
    "attention.dtype": (_dtype, (), False, False),
    "impl.determinism": (_determinism, (needs("deterministic", "determinism"),), False, False),
    "impl.inputs-unmodified": (_inputs_unmodified, (), False, False),
    "impl.strided-inputs": (_strided_inputs, (needs("strided", "non-contiguous inputs"),), False, True),
}


def register(kind) -> None:
    """Register the shared checks that ``kind`` takes (its ``shared`` clauses), with its general strategy."""
    for clause in kind.shared:
        make, requires, foundation, numeric = SHARED[clause]
        run = make(kind)
        check(clause, kind.name, kind.general, requires=requires, per_dtype=kind.name != "pe", foundation=foundation,
              numeric=numeric)(run)
