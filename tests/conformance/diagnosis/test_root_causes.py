"""One root cause, one entry: failures that share a cause are grouped, in the data and in every form of the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from kqv.conformance import check
from kqv.conformance.report.causes import affects, case_size, headline, root_causes
from kqv.conformance.report.data import ClauseResult, DtypeResult, Report, TargetReport
from kqv.conformance.report.markdown import render
from kqv.conformance.report.terminal import show

CLAUSES = ["mask.bool", "attention.sdpa", "attention.accuracy", "attention.shape"]


def refuses_float32(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Raises for float32 inputs, whatever the call, as torch's masked_fill(-1e9) does for float16."""
    if query.dtype == np.float32:
        raise RuntimeError(f"value cannot be converted to type float without overflow (shape {query.shape})")
    from kqv.reference import scaled_dot_product_attention
    return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale).astype(query.dtype)


def _case(L: int, S: int, dtype: str = "float32") -> str:
    return json.dumps({"kind": "sdpa", "dtype": dtype, "batch": [], "L": L, "S": S, "E": 1, "Ev": 1, "seed": 5},
                      sort_keys=True)


def _failed(dtype: str, message: str, case: str | None = None, cause: str | None = None) -> DtypeResult:
    return DtypeResult(dtype, "failed", message, 3, 0.1, case, cause)


@pytest.fixture(scope="module")
def raising_report() -> Report:
    return check(refuses_float32, "sdpa", profile="quick", clauses=CLAUSES, dtypes=("float64", "float32"),
                 isolation=False)


def test_one_exception_across_clauses_is_one_root_cause(raising_report: Report) -> None:
    target = raising_report.targets[0]
    assert sum(r.status == "failed" for r in target.clauses) == len(CLAUSES)
    [cause] = target.root_causes()
    assert cause.kind == "raised" and cause.cause.startswith("the backend raised RuntimeError: value cannot be")
    assert cause.clauses == [r.clause for r in target.clauses] and cause.dtypes == ["float32"]
    assert cause.reproduce and "--replay" in cause.reproduce and cause.case["dtype"] == "float32"
    smallest = min(case_size(json.loads(d.case)) for r in target.clauses for d in r.dtypes if d.case)
    assert case_size(cause.case) == smallest


def test_the_json_report_has_the_root_causes(raising_report: Report) -> None:
    data = json.loads(raising_report.to_json())["targets"][0]
    [cause] = data["root_causes"]
    assert cause["kind"] == "raised" and sorted(cause["clauses"]) == sorted(CLAUSES)
    assert data["departures"] == [] and all(c["departures"] == [] for c in data["clauses"])
    failed = [d for c in data["clauses"] for d in c["dtypes"] if d["status"] == "failed"]
    assert failed and all(d["cause"].startswith("the backend raised RuntimeError") for d in failed)


def test_the_terminal_and_markdown_reports_lead_with_the_root_cause(raising_report: Report) -> None:
    console = Console(record=True, width=200)
    show(raising_report, console)
    text = console.export_text()
    assert text.index("ROOT CAUSES") < text.index("clauses by backend")
    assert text.count("the backend raised RuntimeError") == 1 + len(CLAUSES)  # the cause once, then each clause
    assert "NOT conformant: 1 root cause, 4 clauses failed" in text
    markdown = render(raising_report)
    assert markdown.index("## Root causes") < markdown.index("## sdpa")
    assert "1 root cause, 4 clauses failed" in markdown and "4 clauses at float32: mask.bool" in markdown
    assert markdown.count("the backend raised RuntimeError") == 1 + len(CLAUSES)


def _target(*results: ClauseResult) -> TargetReport:
    return TargetReport("mine", "sdpa", list(results), origin="mine.py:fn")


def test_the_same_message_but_its_numbers_is_one_cause_and_another_message_is_another() -> None:
    target = _target(
        ClauseResult("mask.bool", [_failed("float32", "m", _case(3, 4), "the backend raised ValueError: size 3 != 4"),
                                   _failed("float64", "m", _case(2, 2, "float64"), "the backend raised KeyError: x")]),
        ClauseResult("attention.sdpa", [_failed("float32", "m", _case(1, 2), "the backend raised ValueError: size 1 "
                                                                                "!= 2")]))
    raised, other = root_causes(target)
    assert raised.clauses == ["mask.bool", "attention.sdpa"] and other.clauses == ["mask.bool"]
    assert raised.case["L"] == 1 and raised.clause == "attention.sdpa"  # the smallest of the two
    assert raised.reproduce.startswith("kqv check mine.py:fn --kind sdpa --clause attention.sdpa --replay '")
    assert headline(target) == "2 root causes, 2 clauses failed"


def test_a_named_departure_is_a_cause_at_the_dtypes_it_explains() -> None:
    named = {"name": "scale 1/E", "description": "the scores are scaled by 1/E", "evidence": "on the failing case at "
             "float64", "dtypes": ["float64"]}
    results = [ClauseResult(clause, [_failed("float64", "off", _case(2, 3, "float64")),
                                     _failed("float32", "off", _case(2, 3))], departures=[named])
               for clause in ("scores.scale.default", "attention.sdpa")]
    departure, *left = root_causes(_target(*results))
    assert departure.kind == "departure" and departure.departures == ["scale 1/E"]
    assert departure.failures == [("scores.scale.default", "float64"), ("attention.sdpa", "float64")]
    assert [cause.failures for cause in left] == [[("scores.scale.default", "float32")],
                                                  [("attention.sdpa", "float32")]]
    assert all(cause.kind == "clause" for cause in left)
    assert affects(departure) == "2 clauses at float64: scores.scale.default, attention.sdpa"


def test_a_failure_that_may_follow_from_a_foundation_joins_it_at_the_same_dtype() -> None:
    foundation = ClauseResult("attention.shape", [_failed("float32", "shape (2,)", _case(1, 1))])
    follower = ClauseResult("mask.bool", [_failed("float32", "off", _case(2, 2)), _failed("float64", "off",
                                                                                         _case(2, 2, "float64"))],
                            may_follow_from=["attention.shape"])
    first, second = root_causes(_target(follower, foundation))
    assert first.kind == "foundation" and first.failures == [("attention.shape", "float32"), ("mask.bool", "float32")]
    assert "may follow from it" in first.cause
    assert second.kind == "clause" and second.failures == [("mask.bool", "float64")]


def test_a_conformant_target_has_no_root_cause() -> None:
    target = _target(ClauseResult("mask.bool", [DtypeResult("float32", "passed", "", 8)]))
    assert root_causes(target) == [] and target.departures() == []


def test_the_clauses_of_a_cause_are_grouped_by_their_dtypes() -> None:
    from kqv.conformance.report.causes import RootCause

    cause = RootCause("x", "raised", failures=[("mask.bool", "float64"), ("mask.bool", "float32"),
                                               ("attention.sdpa", "float64"), ("attention.sdpa", "float32"),
                                               ("cache.decode", "float64")])
    assert affects(cause) == "3 clauses at float64, float32: mask.bool, attention.sdpa; at float64: cache.decode"
    assert affects(RootCause("x", "raised", failures=[("pe.sinusoid", None)])) == "1 clause: pe.sinusoid"
