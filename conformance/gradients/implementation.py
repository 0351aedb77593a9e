"""What a backward pass owes besides its numbers: it leaves its inputs as they were, and it repeats itself bitwise.

The same duties as the forward call's (clauses ``impl.inputs-unmodified`` and ``impl.determinism``), for the
backward pass: a kernel that scales ``dO`` or the query in place, or that accumulates ``dK`` and ``dV`` with atomics
in whatever order its threads finish, breaks them.
"""

from __future__ import annotations

from ..kinds.sdpa.call import arrays
from ..kinds.sdpa.case import MASKS
from ..kinds.sdpa.strategy import cases
from ..messages import gradient_inputs_written, gradients_not_deterministic
from ..registry import CheckFailure, check, needs
from .accuracy import FACET, REQUIRES
from .call import NAMES, SYMBOLS, differentiate, upstream

_cases = cases(masks=MASKS, causal=(False, True), scales=True)


@check("gradient.inputs-unmodified", "sdpa", _cases, requires=REQUIRES, numeric=False, variant=FACET)
def inputs_unmodified(backend, case, context):
    """No input array (query, key, value, the mask, dO) holds other values after the backward pass."""
    inputs = case.build()
    grad_output = upstream(case, inputs)
    invocation = differentiate(backend, inputs, grad_output)
    originals = {**arrays(inputs), "grad_output": grad_output}
    changed = [name for name, native in invocation.natives.items()
               if not backend.adapter.unchanged(native, originals[name])]
    if changed:
        raise CheckFailure(gradient_inputs_written(changed))


@check("gradient.determinism", "sdpa", _cases,
       requires=REQUIRES + (needs("deterministic", "determinism"),), numeric=False, variant=FACET)
def determinism(backend, case, context):
    """Two backward passes on the same inputs and dO give bitwise identical dQ, dK and dV."""
    inputs = case.build()
    grad_output = upstream(case, inputs)
    first = differentiate(backend, inputs, grad_output).gradients
    second = differentiate(backend, inputs, grad_output).gradients
    for name, one, two in zip(NAMES, first, second):
        if one.shape != two.shape or one.dtype != two.dtype or one.tobytes() != two.tobytes():
            raise CheckFailure(gradients_not_deterministic(SYMBOLS[name], one, two))
