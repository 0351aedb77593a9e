"""Declarations that fit real code: a backend that rejects a call by design (causal only, self-attention only,
even widths only) conforms once it declares so, and without the declaration fails with a hint naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings

from broken import restricted
from kqv.conformance import Declaration, check
from kqv.conformance.kinds.mha.strategy import mha_cases
from kqv.conformance.kinds.pe.strategy import pe_cases
from kqv.conformance.kinds.sdpa.strategy import sdpa_cases
from kqv.conformance.profiles import PROFILES

QUICK = PROFILES["quick"]
RESTRICTED = Path(__file__).resolve().parent / "broken" / "restricted.py"


def _results(fn, kind: str, **declaration):
    report = check(fn, kind, profile="quick", **declaration)
    return {c.clause: c for c in report.targets[0].clauses}, report


@pytest.mark.parametrize(("name", "kind", "skipped"), [
    ("causal_only", "sdpa", {"attention.permutation.queries", "attention.permutation.keys"}),
    ("self_attention_only", "sdpa", set()),
    ("causal_self_attention", "mha", {"mha.cross-attention"}),
    ("even_widths_only", "pe", {"pe.odd-d-model"}),
])
def test_a_restricted_backend_conforms_under_its_declaration(name: str, kind: str, skipped: set[str]) -> None:
    fn = getattr(restricted, name)
    results, report = _results(fn, kind, dtypes=("float64",), **fn.declared)
    assert report.conformant, [r.message for r in results.values() if r.status == "failed"]
    assert skipped <= {clause for clause, r in results.items() if r.status == "skipped"}
    for clause in skipped:
        field = next(iter(fn.declared)) if kind != "mha" else "cross_attention"
        assert f"{field}=False" in results[clause].message, results[clause].message
    assert sum(r.status == "passed" for r in results.values()) >= 4  # it is checked, not skipped wholesale


@pytest.mark.parametrize(("name", "kind", "clause", "flag"), [
    ("causal_only", "sdpa", "attention.sdpa", "--no-non-causal (Declaration(non_causal=False))"),
    ("self_attention_only", "sdpa", "mask.causal.top-left", "--no-cross-lengths (Declaration(cross_lengths=False))"),
    ("causal_self_attention", "mha", "mha.single-head", "--no-cross-attention (Declaration(cross_attention=False))"),
    ("even_widths_only", "pe", "pe.odd-d-model", "--no-odd-d-model (Declaration(odd_d_model=False))"),
])
def test_without_its_declaration_it_fails_with_a_hint_naming_it(name: str, kind: str, clause: str, flag: str) -> None:
    results, report = _results(getattr(restricted, name), kind, clauses=[clause], dtypes=("float64",))
    assert not report.conformant
    message = results[clause].message
    assert "raised NotImplementedError" in message and flag in message, message
    assert "if the implementation does not support" in message


def test_other_exceptions_get_no_declaration_hint() -> None:
    def raises(query, key, value, **kwargs):
        raise RuntimeError("kernel launch failed")

    results, _ = _results(raises, "sdpa", clauses=["attention.sdpa"], dtypes=("float64",))
    assert "RuntimeError: kernel launch failed" in results["attention.sdpa"].message
    assert "declare it" not in results["attention.sdpa"].message


@settings(max_examples=60, deadline=None)
@given(case=sdpa_cases(Declaration(non_causal=False), "float64", QUICK))
def test_a_causal_only_backend_gets_causal_calls_only(case) -> None:
    assert case.is_causal  # a check that draws non-causal calls (its default) gets causal ones


@settings(max_examples=60, deadline=None)
@given(case=sdpa_cases(Declaration(cross_lengths=False), "float64", QUICK.at_tiles(), every_tile=True))
def test_a_self_attention_backend_gets_equal_lengths_only(case) -> None:
    assert case.L == case.S


@settings(max_examples=60, deadline=None)
@given(case=mha_cases(Declaration(kind="mha", cross_attention=False), "float64", QUICK, cross=True,
                      causal=(False, True)))
def test_a_self_attention_mha_backend_gets_x_kv_as_x_q(case) -> None:
    assert case.self_attention and case.L == case.S


@settings(max_examples=60, deadline=None)
@given(case=pe_cases(Declaration(kind="pe", odd_d_model=False), QUICK.at_tiles()))
def test_an_even_width_encoding_gets_even_widths_only(case) -> None:
    assert case.d_model % 2 == 0


@pytest.mark.parametrize(("fields", "message"), [
    ({"causal": False, "non_causal": False}, "causal, non_causal: a backend takes is_causal=True or is_causal=False"),
    ({"non_causal": False, "mask_with_causal": False}, "declare bool_mask=False and float_mask=False too"),
])
def test_declarations_that_leave_no_call_are_refused(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        Declaration(**fields)
    Declaration(non_causal=False, mask_with_causal=False, bool_mask=False, float_mask=False)  # consistent: accepted


def _kqv(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kqv.conformance.cli", *arguments], capture_output=True, text=True,
                          timeout=600)


def test_the_command_line_declares_a_causal_only_kernel() -> None:
    target = f"{RESTRICTED}:causal_only"
    words = ["check", target, "--profile", "quick", "--dtypes", "float64", "--clause", "attention.sdpa"]
    undeclared = _kqv(*words)
    assert undeclared.returncode == 1, undeclared.stdout + undeclared.stderr
    assert "--no-non-causal" in undeclared.stdout
    declared = _kqv(*words, "--no-non-causal", "--clause", "attention.permutation.keys")
    assert declared.returncode == 0, declared.stdout + declared.stderr
    assert "skip" in declared.stdout and "pass" in declared.stdout
