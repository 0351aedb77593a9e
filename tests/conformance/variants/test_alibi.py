"""ALiBi as a declared variant: what the strategies draw (the slopes, their shapes and dtype) and how a case keeps them."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings

from kqv.conformance import Declaration
from kqv.conformance.backends.numpy_reference import sdpa as reference
from kqv.conformance.dtypes import round_to
from kqv.conformance.kinds import case_from_json
from kqv.conformance.kinds.sdpa import sdpa_cases
from kqv.conformance.kinds.sdpa.case import MASKS, SdpaCase
from kqv.conformance.profiles import PROFILES
from kqv.reference import alibi_slopes

DECLARED = Declaration(alibi=True, gqa=True)


@settings(max_examples=300, deadline=None)
@given(case=sdpa_cases(DECLARED, "float16", PROFILES["ci"], masks=MASKS, causal=(False, True)))
def test_the_other_checks_draw_slopes_per_head_or_per_batch_exact_in_the_dtype(case: SdpaCase) -> None:
    slopes = case.variant("alibi")
    inputs = case.build()
    if slopes is None:
        assert "alibi_slopes" not in inputs.keywords
        return
    slopes = inputs.keywords["alibi_slopes"]
    assert slopes.dtype == np.float64 and slopes.shape in ((case.batch[-1],), case.batch[-2:])
    assert np.array_equal(np.asarray(round_to(slopes, "float16"), dtype=np.float64), slopes)
    assert reference(inputs.query, inputs.key, inputs.value, inputs.attn_mask, is_causal=inputs.is_causal,
                     **inputs.keywords).shape == inputs.output_shape()


def test_the_draws_reach_both_signs_both_shapes_the_papers_slopes_and_large_ones() -> None:
    seen = set()

    @settings(max_examples=400, deadline=None, database=None)
    @given(sdpa_cases(Declaration(alibi=True, batch_dims=(2,)), "float64", PROFILES["quick"], variants={"alibi": {}}))
    def collect(case):
        slopes = np.asarray(case.variant("alibi"))
        seen.update({"negative"} if (slopes < 0).any() else set())
        seen.update({"large"} if (np.abs(slopes) >= 3).any() else set())
        seen.add(f"{slopes.ndim}-d")
        if np.array_equal(slopes[-1] if slopes.ndim == 2 else slopes, alibi_slopes(case.batch[-1])):
            seen.add("paper")

    collect()
    assert seen == {"negative", "large", "1-d", "2-d", "paper"}


@settings(max_examples=100, deadline=None)
@given(case=sdpa_cases(DECLARED, "float64", PROFILES["quick"], variants={"alibi": {"least_heads": 3}}))
def test_the_head_order_draws_have_three_heads_or_more(case: SdpaCase) -> None:
    assert case.batch[-1] >= 3 and np.shape(case.variant("alibi"))[-1] == case.batch[-1]
    kv_heads = case.variant("gqa")
    assert kv_heads is None or case.batch[-1] % kv_heads == 0


def test_cases_with_the_variant_round_trip_through_json() -> None:
    slopes = ((0.5, 0.25, -0.125), (1.0, 2.0, 4.0))
    case = SdpaCase(dtype="float32", batch=(2, 3), L=3, S=4, E=5, Ev=2, mask="float", seed=3,
                    variants=(("alibi", slopes),))
    again = case_from_json(case.to_json())
    assert again == case and json.loads(case.to_json())["variants"] == [["alibi", [list(row) for row in slopes]]]
    assert np.array_equal(again.build().keywords["alibi_slopes"], np.array(slopes))
