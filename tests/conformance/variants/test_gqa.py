"""Grouped-query attention as a declared variant: what the strategies draw, what a backend that does
not declare it gets, and that the correct backends pass its clauses at several seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kqv.conformance import Backend, Declaration, check
from kqv.conformance.backends.numpy_reference import sdpa as reference
from kqv.conformance.kinds import case_from_json
from kqv.conformance.kinds.sdpa import sdpa_cases
from kqv.conformance.kinds.sdpa.case import MASKS, SdpaCase
from kqv.conformance.profiles import PROFILES
from kqv.conformance.variants import VARIANTS

CLAUSES = VARIANTS["gqa"].clauses
DECLARED = Declaration(gqa=True)


def _heads(case: SdpaCase) -> tuple[int, int]:
    inputs = case.build()
    return inputs.query.shape[-3], inputs.key.shape[-3]


@settings(max_examples=300, deadline=None)
@given(case=sdpa_cases(DECLARED, "float32", PROFILES["ci"], masks=MASKS, causal=(False, True)))
def test_the_other_checks_draw_the_variant_now_and_then_with_every_head_count(case: SdpaCase) -> None:
    if case.variant("gqa") is None:
        assert case.build().keywords == {}
        return
    query_heads, kv_heads = _heads(case)
    assert query_heads % kv_heads == 0 and kv_heads == case.variant("gqa")
    assert case.build().keywords == {"enable_gqa": True}
    inputs = case.build()
    assert inputs.output_shape() == case.batch + (case.L, case.Ev)
    assert reference(inputs.query, inputs.key, inputs.value, inputs.attn_mask, is_causal=inputs.is_causal,
                     enable_gqa=True).shape == inputs.output_shape()


def test_the_draws_reach_multi_query_ordinary_and_grouped_heads() -> None:
    seen = set()

    @settings(max_examples=400, deadline=None, database=None)
    @given(sdpa_cases(DECLARED, "float64", PROFILES["quick"], variants={"gqa": {}}))
    def collect(case):
        query_heads, kv_heads = _heads(case)
        seen.add("multi-query" if kv_heads == 1 else "ordinary" if kv_heads == query_heads else "grouped")

    collect()
    assert seen == {"multi-query", "ordinary", "grouped"}


@settings(max_examples=100, deadline=None)
@given(case=sdpa_cases(Declaration(gqa=True, batch_dims=(2,)), "float64", PROFILES["quick"],
                       variants={"gqa": {"kv_heads": (2, 4), "group": (2, 4)}}))
def test_forced_grouped_draws_have_two_heads_per_group_or_more(case: SdpaCase) -> None:
    query_heads, kv_heads = _heads(case)
    assert kv_heads >= 2 and query_heads // kv_heads >= 2 and len(case.batch) == 2


def test_a_backend_without_batch_dims_cannot_use_the_variant() -> None:
    report = check(reference, "sdpa", profile="quick", clauses=["gqa.head-mapping"], gqa=True, batch_dims=(0,))
    [result] = report.targets[0].clauses
    assert result.status == "skipped" and "batch dims" in result.message


def test_cases_with_the_variant_round_trip_through_json() -> None:
    case = SdpaCase(dtype="float32", batch=(2, 6), L=3, S=4, E=5, Ev=2, mask="bool", seed=3, variants=(("gqa", 2),))
    again = case_from_json(case.to_json())
    assert again == case and json.loads(case.to_json())["variants"] == [["gqa", 2]]
    inputs = again.build()
    assert inputs.query.shape == (2, 6, 3, 5) and inputs.key.shape == (2, 2, 4, 5) and inputs.value.shape == (2, 2, 4, 2)


@pytest.mark.parametrize("target", ["torch-sdpa-cpu", "torch-sdpa-cpu-math", "torch-sdpa-cpu-flash"])
def test_torch_passes_every_gqa_clause(target: str) -> None:
    pytest.importorskip("torch")
    report = check(target, "sdpa", profile="quick", seed=4, clauses=list(CLAUSES))
    failed = {c.clause: c.message for c in report.targets[0].clauses if c.status != "passed"}
    assert not failed, failed


def test_a_declared_backend_that_ignores_enable_gqa_fails_with_the_shapes() -> None:
    def ignores(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        return reference(query, key, value, attn_mask, dropout_p, is_causal, scale)  # broadcasting H_kv against H_q

    report = check(Backend("ignores", ignores, Declaration(gqa=True)), profile="quick", clauses=["gqa.head-mapping"])
    [result] = report.targets[0].clauses
    assert result.status == "failed" and "batch dims" in result.message


@settings(max_examples=20, deadline=None)
@given(heads=st.sampled_from([(4, 2), (6, 3), (8, 2)]))
def test_the_reference_backend_maps_heads_like_repeating_them(heads) -> None:
    query_heads, kv_heads = heads
    rng = np.random.default_rng(query_heads)
    query = rng.standard_normal((query_heads, 3, 4))
    key, value = rng.standard_normal((kv_heads, 5, 4)), rng.standard_normal((kv_heads, 5, 2))
    group = query_heads // kv_heads
    np.testing.assert_array_equal(reference(query, key, value, enable_gqa=True),
                                  reference(query, np.repeat(key, group, 0), np.repeat(value, group, 0)))
