"""The diagnosis runs where the backend runs (a worker process, this process, a driver of ``--jobs``) and ships its
names back as data; it calls the backend a handful of times per failed clause, and only for failures."""

from __future__ import annotations

import dataclasses

import pytest

from broken import realistic
from kqv.conformance import check
from kqv.conformance.declaration import Declaration
from kqv.conformance.diagnosis import diagnose, observe
from kqv.conformance.kinds.sdpa.case import SdpaCase

NAME = "causal dropped when attn_mask is given"
CLAUSES = ["mask.bool", "mask.causal.top-left"]


@pytest.mark.parametrize("how", [{"isolation": True}, {"isolation": False}, {"jobs": 2}],
                         ids=["worker", "this-process", "jobs"])
def test_the_departure_is_named_wherever_the_backend_runs(how: dict) -> None:
    report = check(realistic.causal_dropped_with_mask, "sdpa", profile="quick", clauses=CLAUSES, **how)
    target = report.targets[0]
    assert target.ran_in == ("this process (--no-isolation)" if how.get("isolation") is False else "a worker process")
    for result in target.clauses:
        assert result.status == "failed" and [d["name"] for d in result.departures] == [NAME], result.clause
        assert f'the output matches "{NAME}"' in result.message
    assert target.departures() == [{"name": NAME, "description": target.clauses[0].departures[0]["description"],
                                    "clauses": CLAUSES}]
    [cause] = target.root_causes()
    assert cause.kind == "departure" and cause.clauses == CLAUSES


class Counting:
    """An executor that calls the backend here and counts the calls."""

    def __init__(self, backend) -> None:
        self.backend, self.calls = backend, 0

    def diagnose(self, case):
        self.calls += 1
        return observe(self.backend, case)


def test_a_diagnosis_makes_a_handful_of_calls_and_keeps_them_for_the_next_clause() -> None:
    from kqv.conformance.backend import Backend

    executor = Counting(Backend("mine", realistic.causal_dropped_with_mask, Declaration()))
    case = SdpaCase(dtype="float64", L=2, S=3, E=2, Ev=2, mask="bool", is_causal=True, seed=3)
    failing = [("float64", case), ("float32", dataclasses.replace(case, dtype="float32"))]
    cache: dict = {}
    diagnose(executor, "sdpa", Declaration(), failing, cache)
    assert executor.calls == 2 + 3  # the failing cases, then the probe, the probe without its mask, without causal
    diagnose(executor, "sdpa", Declaration(), failing, cache)
    assert executor.calls == 5


def test_a_conformant_run_diagnoses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from kqv.conformance import runner

    def no_diagnosis(*args, **kwargs):
        raise AssertionError("a diagnosis without a failure")

    monkeypatch.setattr(runner, "diagnose", no_diagnosis)
    report = check("numpy", "sdpa", profile="quick", clauses=["mask.bool"], isolation=False)
    assert report.conformant and report.targets[0].root_causes() == []
