"""Each departure of the catalogue names the broken implementation that commits it, and nothing names a correct one.

The diagnosis is called as the runner calls it (:func:`kqv.conformance.diagnosis.naming`, the backend in this
process), on one failing case and kqv's probes beside it.
"""

from __future__ import annotations

import pytest
from examples import EXAMPLES

from kqv.conformance.backend import Backend
from kqv.conformance.backends import builtin
from kqv.conformance.declaration import Declaration
from kqv.conformance.diagnosis import CATALOGUES, diagnose, observe
from kqv.conformance.executors import InProcess


def _names(backend: Backend, case) -> list[str]:
    named = diagnose(InProcess(backend), case.kind, backend.declaration, [(getattr(case, "dtype", ""), case)])
    return [n.name for n in named]


def _broken(fn, kind: str) -> Backend:
    declaration = dict(fn.declaration)
    dtypes = declaration.pop("dtypes", None)
    return Backend(fn.__name__, fn, Declaration(kind=kind, **declaration, **({"dtypes": dtypes} if dtypes else {})))


def test_every_departure_of_the_catalogue_has_its_broken_implementation() -> None:
    entries = {(kind, entry.name) for kind, catalogue in CATALOGUES.items() for entry in catalogue.entries}
    assert entries == set(EXAMPLES)


@pytest.mark.parametrize(("kind", "name"), sorted(EXAMPLES), ids=[f"{k}-{n}" for k, n in sorted(EXAMPLES)])
def test_the_departure_names_the_implementation_that_commits_it(kind: str, name: str) -> None:
    fn, case = EXAMPLES[kind, name]
    backend = _broken(fn, kind)
    evidence = observe(backend, case)
    assert evidence.output and evidence.departs, f"{fn.__name__} does not depart on {case}: {evidence}"
    assert name in _names(backend, case), (fn.__name__, evidence.matches)


CORRECT = [("numpy", "sdpa"), ("numpy", "mha"), ("numpy", "pe"), ("torch-sdpa-cpu-math", "sdpa")]


@pytest.mark.parametrize(("target", "kind"), CORRECT, ids=[f"{t}-{k}" for t, k in CORRECT])
def test_a_correct_backend_departs_nowhere_and_gets_no_name(target: str, kind: str) -> None:
    backend = builtin(target)[kind]
    if backend.unavailable():
        pytest.skip(backend.unavailable())
    declaration = backend.declaration
    cases = [case for (k, _), (_, case) in EXAMPLES.items() if k == kind
             and getattr(case, "dtype", declaration.dtypes[0]) in declaration.dtypes
             and all(getattr(declaration, variant) for variant, _ in getattr(case, "variants", ()))
             and (declaration.mask_with_causal or not (getattr(case, "is_causal", False) and case.mask != "none"))]
    assert len(cases) >= 8
    for case in cases:
        evidence = observe(backend, case)
        assert evidence.output and not evidence.departs, (case, evidence.failure)
        assert _names(backend, case) == [], case


def test_a_name_needs_every_call_it_applies_to() -> None:
    # causal_dropped_with_mask departs with a mask and is right without one: the probe without the mask rules out
    # "causal mask ignored", which explains the failing case as well.
    fn, case = EXAMPLES["sdpa", "causal dropped when attn_mask is given"]
    backend = _broken(fn, "sdpa")
    assert set(observe(backend, case).matches["causal mask ignored"]) == {""}
    assert _names(backend, case) == ["causal dropped when attn_mask is given"]


def test_a_departure_with_a_parameter_names_the_value_that_matched() -> None:
    fn, case = EXAMPLES["sdpa", "keys truncated to a tile"]
    [named] = [n for n in diagnose(InProcess(_broken(fn, "sdpa")), "sdpa", Declaration(), [("float64", case)])
               if n.name == "keys truncated to a tile"]
    assert "first 64 keys" in named.description and named.dtypes == ("float64",)


def test_the_probe_names_a_departure_whose_failing_case_raised() -> None:
    # pe.odd-d-model shrinks to an odd width the implementation refuses; kqv's probe (d_model = 16) still shows the
    # halves, which d_model = 2 could not (there both layouts coincide).
    from broken import pe
    from kqv.conformance.kinds.pe.case import PeCase

    backend = _broken(pe.halves_even_widths_only, "pe")
    assert not observe(backend, PeCase(length=1, d_model=1)).output
    [named] = diagnose(InProcess(backend), "pe", backend.declaration, [("", PeCase(length=1, d_model=1))])
    assert (named.name, named.evidence, named.dtypes) == ("concatenated halves", "on kqv's probe only", ())
