"""The lse as a declared variant: the keyword goes to the backend's call only, a call asked for the lse must return the
tuple (output, lse) of the right shape and dtype, and the checks that judge only the output take it from the tuple."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from kqv.conformance import Declaration, check
from kqv.conformance.kinds.sdpa import sdpa_cases
from kqv.conformance.kinds.sdpa.call import lse_dtypes
from kqv.conformance.kinds.sdpa.case import MASKS, SdpaCase
from kqv.conformance.profiles import PROFILES
from kqv.reference import scaled_dot_product_attention

DECLARED = Declaration(lse=True, gqa=True)


@settings(max_examples=100, deadline=None)
@given(case=sdpa_cases(DECLARED, "float32", PROFILES["ci"], masks=MASKS, causal=(False, True)))
def test_return_lse_goes_to_the_call_and_not_to_the_reference(case: SdpaCase) -> None:
    inputs = case.build()
    assert "return_lse" not in inputs.keywords
    asked = case.variant("lse") is not None
    assert inputs.call_keywords.get("return_lse", False) is asked
    assert inputs.results == (("lse",) if asked else ())


def test_the_lse_may_come_in_float32_or_wider_or_the_inputs_dtype() -> None:
    assert lse_dtypes("float16") == ("float32", "float64", "float16")
    assert lse_dtypes("float64") == ("float32", "float64")


def _returning(make):
    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, return_lse=False):
        output, lse = scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                                                   return_lse=True)
        return make(output.astype(query.dtype), lse) if return_lse else output.astype(query.dtype)
    return sdpa


@pytest.mark.parametrize(("make", "words"), [
    (lambda output, lse: output, "expected a tuple (output, lse)"),
    (lambda output, lse: (output, lse[..., None]), "lse shape"),
    (lambda output, lse: (output, lse.astype(np.int64)), "lse dtype int64"),
], ids=["output-only", "shape", "dtype"])
def test_a_malformed_lse_fails_even_the_checks_that_judge_only_the_output(make, words: str) -> None:
    report = check(_returning(make), "sdpa", profile="quick", clauses=["lse.definition", "attention.sdpa"],
                   dtypes=("float32",), lse=True, isolation=False)
    statuses = {c.clause: c for c in report.targets[0].clauses}
    assert statuses["lse.definition"].status == "failed" and words in statuses["lse.definition"].message
    assert statuses["attention.sdpa"].status == "failed" and words in statuses["attention.sdpa"].message


def test_a_correct_lse_passes_every_lse_clause() -> None:
    report = check(_returning(lambda output, lse: (output, lse)), "sdpa", profile="quick", lse=True,
                   clauses=["lse.definition", "lse.weights", "lse.empty-row", "lse.combine", "attention.sdpa"],
                   isolation=False)
    assert report.conformant, [c.message for c in report.targets[0].clauses if c.status != "passed"]


def _flushing_float16_output(output: np.ndarray, lse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The output stored with float16's subnormals (below 2^-14) flushed to 0, as a kernel that accumulates in float32
    may not: kqv's eta_s for float16 summed in float32 is half float16's subnormal spacing, 2^-25."""
    return np.where(np.abs(output) < 2.0**-14, np.zeros_like(output), output), lse


@pytest.mark.parametrize("seed", [0, 1])
def test_a_float16_output_with_its_subnormals_flushed_fails_lse_weights(seed: int) -> None:
    report = check(_returning(_flushing_float16_output), "sdpa", profile="ci", lse=True, clauses=["lse.weights"],
                   dtypes=("float16",), isolation=False, seed=seed)
    (clause,) = report.targets[0].clauses
    assert clause.status == "failed", clause.message
