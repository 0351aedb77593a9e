"""A backend that raises, returns the wrong type, shape or dtype, or NaN fails that clause with a
message saying so, and the run goes on to the next clause."""

from __future__ import annotations

import numpy as np
import pytest

from kqv.conformance import Backend, Declaration, ExpectedFailure, check
from kqv.conformance.backends.numpy_reference import sdpa as reference


def _results(fn, **options):
    report = check(fn, "sdpa", profile="quick", **options)
    return {c.clause: c for c in report.targets[0].clauses}, report


def test_a_backend_that_raises_fails_every_clause_with_the_exception() -> None:
    def raises(query, key, value, **kwargs):
        raise RuntimeError("kernel launch failed")

    results, report = _results(raises)
    ran = [r for r in results.values() if r.status != "skipped"]
    assert len(ran) > 20  # the run went on clause after clause
    assert all(r.status == "failed" for r in ran)
    assert all("the backend raised RuntimeError: kernel launch failed" in r.message for r in ran)
    assert not report.conformant


def test_a_backend_that_raises_only_on_masks_fails_only_those_clauses() -> None:
    def no_masks(query, key, value, attn_mask=None, **kwargs):
        if attn_mask is not None:
            raise NotImplementedError("masks are not supported")
        return reference(query, key, value, **kwargs)

    results, _ = _results(no_masks, clauses=["mask.bool", "scores.scale.default"])
    assert results["mask.bool"].status == "failed"
    assert "NotImplementedError: masks are not supported" in results["mask.bool"].message
    assert results["scores.scale.default"].status == "passed"


def test_undeclared_features_are_skipped_with_the_reason_not_failed() -> None:
    results, report = _results(reference, bool_mask=False, float_mask=False, causal=False, scale=False)
    for clause, reason in (("mask.bool", "bool masks (bool_mask=False)"), ("mask.additive", "float_mask=False"),
                           ("mask.causal.top-left", "causal=False"), ("scores.scale.explicit", "scale=False"),
                           ("mask.fully-masked-row", "no masks")):
        assert results[clause].status == "skipped", clause
        assert reason in results[clause].message, results[clause].message
    assert report.conformant


def test_the_wrong_output_type_fails_with_the_type() -> None:
    results, _ = _results(lambda query, key, value, **kwargs: reference(query, key, value, **kwargs).tolist(),
                          clauses=["attention.sdpa"])
    assert "returned builtins.list, expected numpy.ndarray" in results["attention.sdpa"].message


def test_the_wrong_shape_fails_with_both_shapes() -> None:
    results, _ = _results(lambda query, key, value, **kwargs: reference(query, key, value, **kwargs)[..., :1, :],
                          clauses=["attention.shape"])
    assert results["attention.shape"].status == "failed"
    assert "expected" in results["attention.shape"].message and "(..., L, Ev)" in results["attention.shape"].message


def test_the_wrong_dtype_fails_only_the_dtype_clause() -> None:
    def widened(query, key, value, **kwargs):
        return reference(query, key, value, **kwargs).astype(np.float64)

    results, _ = _results(widened, clauses=["attention.dtype", "attention.sdpa"], dtypes=("float32",))
    assert results["attention.dtype"].status == "failed"
    assert "output dtype float64 for float32 inputs" in results["attention.dtype"].message
    assert results["attention.sdpa"].status == "passed"  # more precision than asked is no error


def test_nan_where_the_spec_has_a_number_is_named() -> None:
    def nan_on_large(query, key, value, **kwargs):
        out = reference(query, key, value, **kwargs)
        return np.where(np.abs(query.astype(np.float64)).max() > 10, np.nan, out).astype(out.dtype)

    results, _ = _results(nan_on_large, clauses=["attention.finite"])
    assert results["attention.finite"].status == "failed"
    assert "NaN or inf where the spec has a number" in results["attention.finite"].message


def test_a_known_departure_is_an_expected_failure_with_its_reason() -> None:
    def float32_inside(query, key, value, **kwargs):
        f32 = (a.astype(np.float32) for a in (query, key, value))
        return reference(*f32, **kwargs).astype(query.dtype)

    known = ExpectedFailure("attention.accuracy", "computes in float32 inside", dtypes=("float64",))
    backend = Backend("f32", float32_inside, Declaration(expected_failures=(known,)))
    results, report = _results(backend, clauses=["attention.accuracy"])
    result = results["attention.accuracy"]
    assert result.status == "xfailed"
    assert "known departure: computes in float32 inside" in result.message
    assert [d.status for d in result.dtypes] == ["xfailed", "passed"]  # float32 itself is fine
    assert report.conformant  # a known departure is not a failure...
    assert result.status != "passed"  # ...and not a pass either


def test_a_known_departure_that_does_not_show_is_xpassed() -> None:
    backend = Backend("fine", reference, Declaration(expected_failures=(
        ExpectedFailure("attention.sdpa", "thought to be wrong"),)))
    results, _ = _results(backend, clauses=["attention.sdpa"])
    assert results["attention.sdpa"].status == "xpassed"


@pytest.mark.parametrize(("fields", "message"), [
    ({"dtypes": ("float8",)}, "dtypes: expected one of"),
    ({"masked_rows": "ones"}, "masked_rows: expected one of zeros, nan, uniform"),
    ({"causal_alignment": "middle"}, "causal_alignment: expected one of"),
    ({"batch_dims": (5,)}, "batch_dims"),
    ({"bool_mask": "yes"}, "bool_mask: expected True or False"),
    ({"kind": "conv"}, "kind: expected one of sdpa, mha, pe"),
    ({"accumulation": "float8"}, "accumulation"),
])
def test_bad_declarations_name_the_field(fields, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Declaration(**fields)


def test_expected_failures_need_a_known_clause_and_a_reason() -> None:
    with pytest.raises(KeyError, match="did you mean 'attention.accuracy'"):
        ExpectedFailure("attention.acuracy", "typo")
    with pytest.raises(ValueError, match="reason must be a non-empty string"):
        ExpectedFailure("attention.accuracy", " ")


def test_unknown_declaration_keywords_are_refused() -> None:
    with pytest.raises(TypeError):
        check(reference, "sdpa", profile="quick", maskedrows="zeros")
