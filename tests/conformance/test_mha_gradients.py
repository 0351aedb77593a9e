"""The backward facet of the ``mha`` kind (clauses ``mha.gradient.inputs``, ``mha.gradient.weights``): the
declaration, the backward callable's contract, autograd through every argument, and a bound that catches a float64
backward computed in float32. The built-ins' runs are in test_builtin_backends.py (seed 0)."""

from __future__ import annotations

import numpy as np
import pytest

from kqv.conformance import Backend, check
from kqv.conformance.backends import numpy_reference
from kqv.conformance.dtypes import as_float64
from kqv.conformance.gradients import MHA_CLAUSES
from kqv.conformance.kinds.mha.backward_bound import GRADIENTS, mha_backward_expectation
from kqv.conformance.kinds.mha.case import MhaCase
from kqv.conformance.kinds.mha.gradient_call import gradients, upstream
from kqv.conformance.options import with_overrides
from kqv.conformance.tolerance import Precision

CASE = MhaCase(dtype="float64", B=2, L=3, S=4, d_model=4, num_heads=2, d_k=2, d_v=2, biases=("q", "k", "v", "o"),
               mask="bool", seed=5)


def _statuses(report):
    return {c.clause: (c.status, c.message) for c in report.targets[0].clauses}


def test_no_backward_leaves_the_mha_gradient_clauses_out() -> None:
    numpy_mha = numpy_reference.backends()["mha"]
    assert numpy_mha.declaration.backward and not with_overrides(numpy_mha, {"backward": False}).declaration.backward
    report = check("numpy", "mha", profile="quick", clauses=list(MHA_CLAUSES), backward=False)
    assert {status for status, _ in _statuses(report).values()} == {"skipped"}


def _float32_inside(x_q, x_kv, w_q, w_k, w_v, w_o, grad_output, **options):
    """The reference's backward on float32 copies, returned as float64: a float64 backward computed in float32."""
    low = [a.astype(np.float32) for a in (x_q, x_kv, w_q, w_k, w_v, w_o, grad_output)]
    options = {k: v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype != np.bool_ else v
               for k, v in options.items()}
    return tuple(g.astype(np.float64) for g in numpy_reference.mha_backward(*low, **options))


def _first_three(*args, **options):
    return numpy_reference.mha_backward(*args, **options)[:3]


@pytest.mark.parametrize(("backward", "words"), [
    (_float32_inside, "the gradient of"),
    (_first_three, "expected a tuple (dx_q, dx_kv, dw_q, dw_k, dw_v, dw_o"),
])
def test_a_backward_callable_that_is_wrong_fails_naming_it(backward, words: str) -> None:
    declaration = numpy_reference.backends()["mha"].declaration.replace(dtypes=("float64",))
    backend = Backend("mine", numpy_reference.mha, declaration, backward=backward)
    statuses = _statuses(check(backend, "mha", profile="quick", clauses=list(MHA_CLAUSES)))
    assert all(status == "failed" and words in message for status, message in statuses.values()), statuses


def test_the_reference_backward_passes_its_own_bound_at_every_dtype() -> None:
    backend = numpy_reference.backends()["mha"]
    for dtype in ("float64", "float32", "float16"):
        case = MhaCase(**{**vars(CASE), "dtype": dtype})
        inputs = case.build()
        grad_output = upstream(case, inputs)
        got = gradients(backend, inputs, grad_output)
        expected, bound = mha_backward_expectation(inputs, as_float64(grad_output), Precision.of(dtype))
        for name in GRADIENTS:
            assert np.all(np.abs(getattr(got, name) - getattr(expected, name)) <= getattr(bound, name)), (dtype, name)


def test_torch_autograd_reaches_every_weight_and_bias() -> None:
    pytest.importorskip("torch")
    from kqv.conformance.backends import torch_mha

    backend = torch_mha.backend("cpu")
    inputs = CASE.build()
    grad_output = upstream(CASE, inputs)
    got = gradients(backend, inputs, grad_output)
    expected, bound = mha_backward_expectation(inputs, as_float64(grad_output), Precision.of("float64"))
    for name in GRADIENTS:
        assert np.any(getattr(got, name) != 0) or name == "b_k", name  # db_K is 0: softmax ignores a shift
        assert np.all(np.abs(getattr(got, name) - getattr(expected, name)) <= getattr(bound, name)), name



def test_the_upstream_gradient_keeps_the_heads_intermediates_in_the_dtypes_range() -> None:
    case = MhaCase(**{**vars(CASE), "dtype": "float16"})
    inputs = case.build()
    plain = upstream(case, inputs)
    loud = inputs.replace(x_kv=(inputs.x_kv * 20000).astype(np.float16))  # values near 3e4: dP would pass 65504
    scaled = upstream(case, loud)
    assert scaled.dtype == np.float16 and 0 < np.max(np.abs(scaled)) < np.max(np.abs(plain)) / 10
