"""A matrix cell says at which dtypes a clause departs or fails when its status differs by dtype, in the terminal, in
Markdown and in the docs' ``kqv-report`` directive (which reads the per-dtype results of a JSON report)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.console import Console

from kqv.conformance.report import ClauseResult, DtypeResult, Report, TargetReport
from kqv.conformance.report.cells import parts, text
from kqv.conformance.report.markdown import render
from kqv.conformance.report.terminal import show

ALL = ("float64", "float32", "float16", "bfloat16")


def _result(clause: str, statuses: dict[str | None, str]) -> ClauseResult:
    return ClauseResult(clause, [DtypeResult(dtype, status, "") for dtype, status in statuses.items()])


def _all(status: str, **others: str) -> dict[str | None, str]:
    return {dtype: others.get(dtype, status) for dtype in ALL}


@pytest.mark.parametrize("statuses, cell", [
    (_all("passed"), "pass"),
    (_all("xfailed"), "xfail"),
    (_all("passed", float64="xfailed"), "pass; xfail f64"),
    (_all("passed", float16="failed"), "pass; FAIL f16"),
    (_all("passed", float16="failed", bfloat16="failed"), "pass; FAIL f16, bf16"),
    (_all("xfailed", float32="passed"), "xfail; pass f32"),
    (_all("passed", float64="xpassed", bfloat16="skipped"), "pass; xpass f64; skip bf16"),
    (_all("passed", float64="failed", float32="failed"), "pass; FAIL f64, f32"),  # a tie leaves pass bare
    ({**_all("xpassed", bfloat16="xfailed"), None: "xfailed"}, "xpass; xfail bf16, overall"),
    ({None: "passed"}, "pass"),
    ({}, ""),
])
def test_a_cell_names_the_dtypes_of_each_status_but_the_commonest(statuses, cell: str) -> None:
    assert text(parts(statuses.items())) == cell


def _report() -> Report:
    departs = TargetReport("departs-at-f64", "sdpa", [
        _result("mask.bool", _all("passed", float64="xfailed")),
        _result("mask.additive", _all("passed", float16="failed")),
        _result("attention.accuracy", _all("passed")),
    ], dtypes=ALL)
    return Report([departs], profile="quick")


def test_the_terminal_matrix_names_the_dtypes() -> None:
    out = io.StringIO()
    show(_report(), Console(file=out, width=160, highlight=False, color_system=None))
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.getvalue().splitlines()
            if line.startswith("│") and line.count("│") == 3}
    assert rows["mask.bool"] == "pass; xfail f64"
    assert rows["mask.additive"] == "pass; FAIL f16"
    assert rows["attention.accuracy"] == "pass"


def test_the_terminal_colours_each_part_of_a_cell_by_its_status() -> None:
    out = io.StringIO()
    show(_report(), Console(file=out, width=160, highlight=False, color_system="standard", force_terminal=True))
    assert "\x1b[32mpass\x1b[0m; \x1b[1;31mFAIL f16\x1b[0m" in out.getvalue()  # green, then bold red


def test_the_markdown_matrix_names_the_dtypes_and_bolds_failures() -> None:
    rows = {line.split("`")[1]: line.split("|")[2].strip() for line in render(_report()).splitlines()
            if line.startswith("| [`")}
    assert rows == {"mask.bool": "pass; xfail f64", "mask.additive": "pass; **FAIL f16**", "attention.accuracy": "pass"}


def test_the_docs_directive_builds_the_same_cell_from_a_json_report() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "_ext"))
    try:
        from kqv_conformance import _matrix_cell
    finally:
        sys.path.pop(0)
    target = _report().to_dict()["targets"][0]
    cells = {result["clause"]: _matrix_cell(result) for result in target["clauses"]}
    assert cells == {"mask.bool": "pass; xfail f64", "mask.additive": "pass; FAIL f16", "attention.accuracy": "pass"}
    assert _matrix_cell(None) == ""
