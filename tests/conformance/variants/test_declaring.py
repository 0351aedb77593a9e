"""What every declared variant shares: a backend that does not declare it draws nothing of it and has its clauses
skipped, and the reference, which declares them, passes their clauses at several seeds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from kqv.conformance import Declaration, check
from kqv.conformance.backends.numpy_reference import sdpa as reference
from kqv.conformance.kinds.sdpa import sdpa_cases
from kqv.conformance.kinds.sdpa.case import MASKS
from kqv.conformance.profiles import PROFILES
from kqv.conformance.variants import VARIANTS


@pytest.mark.parametrize("name", list(VARIANTS))
def test_without_the_declaration_nothing_is_drawn_and_the_clauses_are_skipped(name: str) -> None:
    @settings(max_examples=50, deadline=None, database=None)
    @given(sdpa_cases(Declaration(), "float64", PROFILES["quick"], masks=MASKS, variants={name: {}}))
    def never(case):
        assert case.variants == ()

    never()
    report = check(reference, "sdpa", profile="quick", clauses=list(VARIANTS[name].clauses))
    for result in report.targets[0].clauses:
        assert result.status == "skipped"
        assert f"declares no {name} ({name}=False" in result.message


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["gqa", "alibi", "sinks"])
def test_the_reference_passes_every_clause_of_the_variant(name: str, seed: int) -> None:
    clauses = VARIANTS[name].clauses
    report = check("numpy", "sdpa", profile="quick", seed=seed, clauses=list(clauses))
    statuses = {c.clause: (c.status, c.message) for c in report.targets[0].clauses}
    assert all(status == "passed" for status, _ in statuses.values()), statuses
    assert set(statuses) == set(clauses)
