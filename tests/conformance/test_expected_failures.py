"""The known-deviations file (``kqv check --expected-failures FILE``): its format, its errors, how its entries join
the declared ones, the strict pass and the stale entry."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kqv.conformance import Backend, Declaration, ExpectedFailure, check
from kqv.conformance.backends.numpy_reference import sdpa as reference
from kqv.conformance.expected_failures import ExpectedFailuresError, apply, load
from kqv.conformance.report.data import ClauseResult, DtypeResult, Report, TargetReport

GOOD = """\
# kqv known departures of my kernel
[[departure]]
clause = "attention.accuracy"
reason = "computes in float32 inside (#12)"
dtypes = ["float64"]

[[departure]]
clause = "mask.bool"
reason = "an inverted mask on one path (#13)"
target = "mine"
kind = "sdpa"
strict = false
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "xfails.toml"
    path.write_text(text)
    return path


def test_a_file_reads_into_entries_that_know_their_line(tmp_path: Path) -> None:
    known = load(_file(tmp_path, GOOD))
    first, second = known.entries
    assert first.departure == ExpectedFailure("attention.accuracy", "computes in float32 inside (#12)", ("float64",))
    assert first.strict and first.target is None and first.kind is None
    assert first.where.endswith("xfails.toml, departure 1 (line 2)")
    assert (second.target, second.kind, second.strict) == ("mine", "sdpa", False)
    assert second.where.endswith("departure 2 (line 7)")
    assert not known.warnings


@pytest.mark.parametrize(("text", "message"), [
    ("[[departure]\nclause = 1", "not valid TOML: "),
    ("[[departure]]\nclause = 'mask.bool'\nreason = 'x'\ndtype = ['float16']\n",
     "departure 1 (line 1): unknown key dtype; expected clause, reason, dtypes, target, kind, strict"),
    ("[[departure]]\nclause = 'mask.bool'\n", "departure 1 (line 1): the key reason is missing"),
    ("[[departure]]\nreason = 'x'\n", "the key clause is missing"),
    ("[[departure]]\nclause = 'mask.bool'\nreason = ''\n", "reason must be a non-empty string"),
    ("[[departure]]\nclause = 'mask.bool'\nreason = 'x'\ndtypes = 'float16'\n", "dtypes must be a list of dtype names"),
    ("[[departure]]\nclause = 'mask.bool'\nreason = 'x'\ndtypes = ['float8']\n",
     "dtypes: expected one of float64, float32, float16, bfloat16, got 'float8'"),
    ("[[departure]]\nclause = 'mask.bool'\nreason = 'x'\nstrict = 'yes'\n", "strict must be true or false"),
    ("[[departure]]\nclause = 'mask.bool'\nreason = 'x'\nkind = 'conv'\n", "kind: expected one of sdpa, mha, pe"),
    ("[[xfail]]\nclause = 'mask.bool'\n", "unknown key or table xfail; expected only [[departure]] tables"),
    ("departure = 3\n", "departure must be an array of tables"),
    ("[[departure]]\nclause = 'mask.bool'\nreason = 'x'\n\n[[departure]]\nclause = 'mask.bool'\nreason = 7\n",
     "departure 2 (line 5): reason must be a non-empty string, got 7"),
])
def test_a_bad_file_is_an_error_naming_the_file_the_entry_and_what_is_expected(tmp_path: Path, text: str,
                                                                               message: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ExpectedFailuresError) as caught:
        load(path)
    assert str(path) in str(caught.value) and message in str(caught.value), str(caught.value)


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ExpectedFailuresError, match="no-such.toml: cannot be read"):
        load(tmp_path / "no-such.toml")


def test_an_unknown_clause_id_is_a_stale_entry_not_an_error(tmp_path: Path) -> None:
    known = load(_file(tmp_path, "[[departure]]\nclause = 'attention.acuracy'\nreason = 'renamed'\n"))
    assert not known.entries
    [warning] = known.warnings
    assert "departure 1 (line 1): a stale entry" in warning and "did you mean 'attention.accuracy'" in warning


def _report(*results: tuple[str, str | None, str], target: str = "mine", kind: str = "sdpa") -> Report:
    """A report of one target whose clauses have the (clause, dtype, status) results given."""
    clauses: dict[str, ClauseResult] = {}
    for clause, dtype, status in results:
        clauses.setdefault(clause, ClauseResult(clause, [])).dtypes.append(DtypeResult(dtype, status, status))
    return Report([TargetReport(target, kind, list(clauses.values()))])


def _statuses(report: Report) -> dict[tuple[str, str | None], str]:
    return {(r.clause, d.dtype): d.status for t in report.targets for r in t.clauses for d in r.dtypes}


def test_entries_turn_failures_into_expected_ones_and_a_strict_pass_into_a_failure(tmp_path: Path) -> None:
    known = load(_file(tmp_path, GOOD))
    report = apply(_report(("attention.accuracy", "float64", "failed"), ("attention.accuracy", "float32", "failed"),
                           ("mask.bool", "float64", "passed")), known)
    assert _statuses(report) == {("attention.accuracy", "float64"): "xfailed",  # listed at float64
                                 ("attention.accuracy", "float32"): "failed",  # not listed at float32
                                 ("mask.bool", "float64"): "xpassed"}  # strict = false
    accuracy = report.targets[0].clauses[0]
    assert "known departure: computes in float32 inside (#12)" in accuracy.message and "line 2" in accuracy.message
    strict = apply(_report(("attention.accuracy", "float64", "passed")), load(_file(tmp_path, GOOD)))
    [result] = strict.targets[0].clauses
    assert result.status == "failed" and not strict.conformant
    assert "expected to fail" in result.message and "remove the entry, or set strict = false" in result.message


def test_entries_join_the_declared_ones(tmp_path: Path) -> None:
    # A result the backend's own ExpectedFailure made xfailed stays so, and the entry counts as used (not stale).
    report = apply(_report(("attention.accuracy", "float64", "xfailed")), load(_file(tmp_path, GOOD)))
    assert _statuses(report) == {("attention.accuracy", "float64"): "xfailed"}
    assert not any("departure 1" in w for w in report.warnings)


def test_an_entry_that_matches_nothing_run_is_reported_stale(tmp_path: Path) -> None:
    known = load(_file(tmp_path, GOOD))
    report = apply(_report(("attention.accuracy", "float64", "skipped"), ("mask.bool", "float64", "failed"),
                           target="theirs"), known)
    assert _statuses(report) == {("attention.accuracy", "float64"): "skipped", ("mask.bool", "float64"): "failed"}
    stale = "\n".join(report.warnings)
    assert "departure 1 (line 2): clause attention.accuracy at float64: nothing this run checked" in stale
    assert "departure 2 (line 7): clause mask.bool for mine (sdpa)" in stale  # another target's entry
    assert report.to_dict()["warnings"] == report.warnings


def test_an_entry_covers_a_target_by_the_name_it_was_given_as(tmp_path: Path) -> None:
    known = load(_file(tmp_path, GOOD.replace('target = "mine"', 'target = "my_kernel.py:attention"')))
    report = apply(_report(("mask.bool", "float64", "failed"), target="mine"), known, [{"my_kernel.py:attention"}])
    assert _statuses(report) == {("mask.bool", "float64"): "xfailed"}


def float32_inside(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    f32 = (a.astype(np.float32) for a in (query, key, value))
    return reference(*f32, attn_mask=attn_mask, is_causal=is_causal, scale=scale).astype(query.dtype)


def test_the_python_api_takes_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, GOOD)
    backend = Backend("mine", float32_inside, Declaration())
    report = check(backend, profile="quick", clauses=["attention.accuracy"], expected_failures_file=str(path))
    [result] = report.targets[0].clauses
    assert [d.status for d in result.dtypes] == ["xfailed", "passed"]
    assert report.conformant
    assert any("departure 2" in w for w in report.warnings)  # mask.bool was not run: stale here


def _kqv(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kqv.conformance.cli", *arguments], capture_output=True, text=True,
                          timeout=600)


def test_the_command_line_keeps_ci_green_and_warns_of_stale_entries(tmp_path: Path) -> None:
    (tmp_path / "my_kernel.py").write_text(
        "import numpy as np\nfrom kqv.conformance.backends.numpy_reference import sdpa\n\n"
        "def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):\n"
        "    f32 = (a.astype(np.float32) for a in (query, key, value))\n"
        "    return sdpa(*f32, attn_mask=attn_mask, is_causal=is_causal, scale=scale).astype(query.dtype)\n")
    path = _file(tmp_path, GOOD)
    target = f"{tmp_path / 'my_kernel.py'}:attention"
    words = ["check", target, "--profile", "quick", "--clause", "attention.accuracy", "--json", str(tmp_path / "r.json")]
    assert _kqv(*words).returncode == 1  # the departure fails the run without the file
    done = _kqv(*words, "--expected-failures", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "xfail" in done.stdout and "warning: " in done.stdout and "departure 2 (line 7)" in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["conformant"] and len(report["warnings"]) == 1


def test_a_bad_file_exits_2_naming_it(tmp_path: Path) -> None:
    path = _file(tmp_path, "[[departure]]\nclause = 'mask.bool'\n")
    done = _kqv("check", "numpy", "--kind", "pe", "--profile", "quick", "--expected-failures", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"--expected-failures: {path}, departure 1 (line 1): the key reason is missing" in done.stderr


DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("page", ["conformance.md", "tutorial.md"])
def test_the_documented_files_are_valid(tmp_path: Path, page: str) -> None:
    blocks = re.findall(r"^```toml\n(.*?)^```", (DOCS / page).read_text(encoding="utf-8"), re.S | re.M)
    assert blocks, f"{page} shows no known-deviations file"
    for block in blocks:
        known = load(_file(tmp_path, block))
        assert known.entries and not known.warnings
