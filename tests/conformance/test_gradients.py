"""The gradients as a facet of sdpa: the declaration, the three ways kqv differentiates a backend (torch autograd,
jax.vjp, a backward callable), what a backward must return, and the bound of clause gradient.accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from kqv.conformance import Backend, Declaration, check
from kqv.conformance.gradients import CLAUSES
from kqv.conformance.gradients.call import HEADROOM, expectation, upstream
from kqv.conformance.kinds.sdpa.backward_bound import weight_flush
from kqv.conformance.kinds.sdpa.case import SdpaCase
from kqv.conformance.dtypes import LARGEST, as_float64
from kqv.conformance.tolerance import Precision
from kqv.reference import scaled_dot_product_attention, scaled_dot_product_attention_backward


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale).astype(query.dtype)


def attention_backward(query, key, value, grad_output, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    found = scaled_dot_product_attention_backward(query, key, value, grad_output, attn_mask, dropout_p, is_causal,
                                                  scale)
    return tuple(g.astype(a.dtype) for g, a in zip(found, (query, key, value)))


def _statuses(report):
    return {c.clause: (c.status, c.message) for c in report.targets[0].clauses}


def test_without_the_declaration_every_gradient_clause_is_skipped() -> None:
    statuses = _statuses(check(attention, "sdpa", profile="quick", clauses=list(CLAUSES), isolation=False))
    assert {status for status, _ in statuses.values()} == {"skipped"}
    assert all("backward=False" in message for _, message in statuses.values())


def test_the_declaration_is_for_sdpa_and_mha_and_numpy_arrays_need_a_backward_callable() -> None:
    assert Declaration().backward is False
    assert Declaration(kind="mha", backward=True).backward is True
    with pytest.raises(ValueError, match="backward: the gradients are checked for kinds sdpa and mha"):
        Declaration(kind="pe", backward=True)
    with pytest.raises(ValueError, match="backward: numpy.ndarray arrays cannot be differentiated"):
        check(attention, "sdpa", backward=True)
    with pytest.raises(TypeError, match="backward: expected a callable"):
        Backend("b", attention, Declaration(backward=True), backward="not a function")


def test_a_backward_callable_is_checked_on_every_gradient_clause() -> None:
    report = check(attention, "sdpa", profile="quick", dtypes=("float64", "float32"), backward=attention_backward,
                   clauses=list(CLAUSES), isolation=False)
    statuses = _statuses(report)
    assert statuses.pop("gradient.group-sum")[0] == "skipped"  # no gqa declared
    assert all(status == "passed" for status, _ in statuses.values()), statuses


def _returning(change):
    def backward(query, key, value, grad_output, **options):
        return change(*attention_backward(query, key, value, grad_output, **options), grad_output)
    return backward


@pytest.mark.parametrize(("change", "clause", "words"), [
    (lambda dq, dk, dv, do: (dq, dk), "gradient.key", "expected a tuple (dQ, dK, dV)"),
    (lambda dq, dk, dv, do: (dq, dk[..., :1, :], dv), "gradient.key", "dK shape"),
    (lambda dq, dk, dv, do: (dq.astype(np.float64), dk, dv), "gradient.query", "dQ dtype float64, expected float32"),
    (lambda dq, dk, dv, do: (dq, dk, [dv]), "gradient.value", "returned builtins.list"),
    (lambda dq, dk, dv, do: (dq, dk, dv * (1 + 1e-5)), "gradient.value", "elements of dV (the gradient of the value)"),
    (lambda dq, dk, dv, do: (dq, dk, dv, do.__imul__(2))[:3], "gradient.inputs-unmodified",
     "the backward wrote to its input(s) grad_output"),
    (lambda dq, dk, dv, do: (dq + np.random.default_rng().standard_normal(dq.shape).astype(dq.dtype) * 1e-3, dk, dv),
     "gradient.determinism", "two backward passes on the same inputs and dO gave different dQ"),
], ids=["two-gradients", "shape", "dtype", "not-an-array", "off-by-1e-5", "writes-dO", "random"])
def test_a_backward_that_breaks_the_contract_fails_naming_it(change, clause: str, words: str) -> None:
    statuses = _statuses(check(attention, "sdpa", profile="quick", dtypes=("float32",), backward=_returning(change),
                               clauses=[clause], isolation=False))
    status, message = statuses[clause]
    assert status == "failed" and words in message, message


def test_torch_without_autograd_fails_saying_so() -> None:
    torch = pytest.importorskip("torch")

    def detached(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        with torch.no_grad():
            return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p,
                                                                    is_causal, scale=scale)

    statuses = _statuses(check(detached, "sdpa", profile="quick", arrays="torch", backward=True,
                               clauses=["gradient.value"], isolation=False))
    assert statuses["gradient.value"][0] == "failed" and "no grad_fn" in statuses["gradient.value"][1]


# The built-ins' gradients at every dtype: test_builtin_backends.py (numpy, torch-sdpa-cpu) and
# test_third_party_backends.py (each CPU kernel, and each CUDA declaration on the CPU's math kernel).


def test_jax_is_differentiated_through_vjp() -> None:
    pytest.importorskip("jax")
    report = check("jax-sdpa-cpu", "sdpa", profile="quick", dtypes=("float32",),
                   clauses=["gradient.query", "gradient.key", "gradient.value", "gradient.group-sum"])
    statuses = _statuses(report)
    assert all(status == "passed" for status, _ in statuses.values()), statuses


def test_the_upstream_gradient_keeps_the_intermediates_in_the_dtypes_range() -> None:
    # float16 values of 1e4: dP = dO V^T would pass 65504 with a standard normal dO; flash kernels store it.
    case = SdpaCase(dtype="float16", batch=(2,), L=5, S=6, E=4, Ev=8, values="large-values", seed=446)
    inputs = case.build()
    grad_output = as_float64(upstream(case, inputs))
    W = np.abs(grad_output) @ np.abs(as_float64(inputs.value)).swapaxes(-1, -2)  # (..., L, S): bounds |dP|
    assert HEADROOM * W.max() <= LARGEST["float16"]
    assert np.abs(grad_output).max() > 0
    normal = SdpaCase(dtype="float16", batch=(2,), L=5, S=6, E=4, Ev=8, seed=446)
    assert np.abs(as_float64(upstream(normal, normal.build()))).max() > 1  # left as drawn where it fits


def test_the_bound_grows_with_the_unit_roundoff_and_catches_float32_inside() -> None:
    case = SdpaCase(dtype="float64", batch=(2,), L=5, S=6, E=4, Ev=3, mask="bool", seed=3)
    inputs = case.build()
    grad_output = upstream(case, inputs)
    backend = Backend("reference", attention, Declaration(backward=True), backward=attention_backward)
    expected, bound = expectation(backend, inputs, grad_output, case)
    lowered = [a.astype(np.float32) for a in (inputs.query, inputs.key, inputs.value, grad_output)]
    in_float32 = scaled_dot_product_attention_backward(*lowered, inputs.attn_mask)
    for name, got in zip(("query", "key", "value"), in_float32):
        error = np.abs(got.astype(np.float32).astype(np.float64) - getattr(expected, name))
        assert np.max(error / getattr(bound, name)) > 1e3, name  # far outside the float64 bound
    loose = expectation(Backend("r", attention, Declaration(backward=True, dtypes=("float32",)),
                                backward=attention_backward), inputs, grad_output,
                        SdpaCase(**{**case.__dict__, "dtype": "float32"}))[1]
    for name in ("query", "key", "value"):
        ratio = np.median(getattr(loose, name) / getattr(bound, name))
        assert 2.0**25 < ratio < 2.0**31, (name, ratio)  # u_s float32 / float64 = 2^29


def test_a_weight_may_be_flushed_below_the_accumulations_smallest_normal() -> None:
    assert weight_flush(Precision.of("float32")) == 2.0**-125
    assert weight_flush(Precision.of("bfloat16")) == 2.0**-125  # accumulates in float32: its flush
    assert weight_flush(Precision.of("float16")) == 2.0**-24  # a weight stored in float16: its subnormal spacing
    assert weight_flush(Precision.of("float16", "dtype")) == 2.0**-13
    assert weight_flush(Precision.of("float64")) == 2.0**-1021
