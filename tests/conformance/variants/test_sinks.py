"""Attention sinks as a declared variant: what the strategies draw (sinks per head, exact in the dtype, of both signs,
far below and far above the scores), how a case keeps them, and the fully-masked-row convention they override."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings

from kqv.conformance import Backend, Declaration, check
from kqv.conformance.backends.numpy_reference import sdpa as reference
from kqv.conformance.dtypes import round_to
from kqv.conformance.kinds import case_from_json
from kqv.conformance.kinds.sdpa import sdpa_cases
from kqv.conformance.kinds.sdpa.case import MASKS, SdpaCase
from kqv.conformance.profiles import PROFILES
from kqv.conformance.variants import VARIANTS
from kqv.reference import scaled_dot_product_attention

DECLARED = Declaration(sinks=True, alibi=True, gqa=True)


@settings(max_examples=300, deadline=None)
@given(case=sdpa_cases(DECLARED, "float16", PROFILES["ci"], masks=MASKS, causal=(False, True)))
def test_the_other_checks_draw_a_sink_per_query_head_exact_in_the_dtype(case: SdpaCase) -> None:
    inputs = case.build()
    if case.variant("sinks") is None:
        assert "sinks" not in inputs.keywords
        return
    sinks = inputs.keywords["sinks"]
    assert sinks.dtype == np.float64 and sinks.shape == (case.batch[-1],)
    assert np.array_equal(np.asarray(round_to(sinks, "float16"), dtype=np.float64), sinks)
    slopes = case.variant("alibi")
    assert slopes is None or np.shape(slopes)[-1] == case.batch[-1]
    assert reference(inputs.query, inputs.key, inputs.value, inputs.attn_mask, is_causal=inputs.is_causal,
                     **inputs.keywords).shape == inputs.output_shape()


def test_the_draws_reach_both_signs_far_below_and_far_above_and_equal_and_scattered_heads() -> None:
    seen = set()

    @settings(max_examples=400, deadline=None, database=None)
    @given(sdpa_cases(Declaration(sinks=True, batch_dims=(2,)), "float64", PROFILES["quick"], variants={"sinks": {}}))
    def collect(case):
        sinks = np.asarray(case.variant("sinks"))
        seen.update({"negative"} if (sinks < 0).any() else set())
        seen.update({"positive"} if (sinks > 0).any() else set())
        seen.update({"far below"} if (sinks <= -100).any() else set())
        seen.update({"far above"} if (sinks >= 100).any() else set())
        seen.add("scattered" if np.ptp(sinks) > 0 else "equal")

    collect()
    assert seen == {"negative", "positive", "far below", "far above", "scattered", "equal"}


@settings(max_examples=100, deadline=None)
@given(case=sdpa_cases(DECLARED, "float64", PROFILES["quick"], variants={"sinks": {"least_heads": 3}}))
def test_the_head_order_draws_have_three_heads_or_more_and_the_other_parameters_follow(case: SdpaCase) -> None:
    assert case.batch[-1] >= 3 and len(case.variant("sinks")) == case.batch[-1]
    slopes = case.variant("alibi")
    assert slopes is None or np.shape(slopes)[-1] == case.batch[-1]
    kv_heads = case.variant("gqa")
    assert kv_heads is None or case.batch[-1] % kv_heads == 0


def test_the_checks_of_whole_rows_never_draw_sinks() -> None:
    assert VARIANTS["sinks"].partial_rows and not any(v.partial_rows for n, v in VARIANTS.items() if n != "sinks")

    @settings(max_examples=100, deadline=None, database=None)
    @given(sdpa_cases(Declaration(sinks=True), "float64", PROFILES["quick"], masks=MASKS, empty_rows=True,
                      whole_rows=True))
    def never(case):
        assert case.variant("sinks") is None

    never()


def test_cases_with_the_variant_round_trip_through_json() -> None:
    sinks = (0.5, -3.0, 1000.0)
    case = SdpaCase(dtype="float32", batch=(2, 3), L=3, S=4, E=5, Ev=2, mask="bool", seed=3,
                    variants=(("sinks", sinks),))
    again = case_from_json(case.to_json())
    assert again == case and json.loads(case.to_json())["variants"] == [["sinks", list(sinks)]]
    assert np.array_equal(again.build().keywords["sinks"], np.array(sinks))
    moved = again.build().heads_moved(np.array([2, 0, 1]))
    assert dict(moved.variants)["sinks"] == (1000.0, 0.5, -3.0)


def _reference_with(convention: str):
    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, sinks=None):
        return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale, sinks=sinks,
                                            masked_rows=convention).astype(query.dtype)
    return sdpa


def test_a_backend_whose_fully_masked_rows_are_nan_gives_zero_rows_with_a_sink_and_passes() -> None:
    """The NaN convention holds for rows without a sink (mask.fully-masked-row); with a sink such a row is 0
    (sinks.empty-row), and the checks that draw sinks now and then expect 0 there, not NaN."""
    backend = Backend("nan-rows", _reference_with("nan"), Declaration(masked_rows="nan", sinks=True))
    clauses = list(VARIANTS["sinks"].clauses) + ["mask.fully-masked-row", "attention.accuracy", "attention.finite"]
    report = check(backend, profile="quick", seed=1, clauses=clauses)
    statuses = {c.clause: (c.status, c.message) for c in report.targets[0].clauses}
    assert all(status == "passed" for status, _ in statuses.values()), statuses
