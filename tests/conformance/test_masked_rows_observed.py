"""The conventions table reports what the rows that keep no key returned whenever one was drawn: one convention, or
``inconsistent`` with what was seen under which mask kind and dtype, under a declared departure too; ``not observed``
only when no example drew such a row (clause ``mask.fully-masked-row``; a consistent convention: see
test_builtin_backends.py::test_an_undeclared_masked_row_convention_is_observed_and_reported)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kqv.conformance import ExpectedFailure, check
from kqv.conformance.kinds import masked_rows
from kqv.conformance.registry import Context
from kqv.reference import scaled_dot_product_attention

CLAUSE = "mask.fully-masked-row"
DTYPES = ("float64", "float32")
SEEN = ("inconsistent: zeros under bool masks at float64, float32; nan under float masks at float64, float32",
        "inconsistent: nan under float masks at float64, float32; zeros under bool masks at float64, float32")


def zeros_under_bool_nan_under_float(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """The reference, with a fully masked row of zeros through a bool mask and of NaN through a float mask."""
    convention = "nan" if attn_mask is not None and attn_mask.dtype != np.bool_ else "zeros"
    return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                                        masked_rows=convention).astype(query.dtype)


def _masked_rows(**declaration):
    report = check(zeros_under_bool_nan_under_float, "sdpa", profile="quick", clauses=[CLAUSE], dtypes=DTYPES,
                   **declaration)
    [target] = report.targets
    [result] = target.clauses
    return result.status, target.conventions["masked_rows"]


def test_rows_that_follow_the_mask_kind_are_reported_inconsistent_with_both_observations() -> None:
    status, convention = _masked_rows()
    assert status == "failed"
    assert convention["source"] == "observed"
    assert convention["value"] in SEEN, convention


def test_under_a_declared_departure_the_observations_are_still_reported() -> None:
    status, convention = _masked_rows(expected_failures=(ExpectedFailure(CLAUSE, "depends on the mask kind"),))
    assert status == "xfailed"
    assert convention["value"] in SEEN, convention


def test_a_declared_convention_the_rows_depart_from_reports_what_they_did() -> None:
    status, convention = _masked_rows(masked_rows="zeros",
                                      expected_failures=(ExpectedFailure(CLAUSE, "NaN through a float mask"),))
    assert status == "xfailed"
    assert convention["source"] == "observed; declared zeros"
    assert convention["value"] in SEEN, convention


def test_no_fully_masked_row_drawn_is_not_observed() -> None:
    status, convention = _masked_rows(bool_mask=False, float_mask=False)  # no mask: no row can lose every key
    assert status == "skipped"
    assert convention == {"value": "not observed", "source": "undeclared"}


@dataclass(frozen=True)
class _Case:
    dtype: str | None
    mask: str


def _described(*records: tuple[str, _Case], declared: str | None = None) -> str | None:
    context = Context()
    for value, case in records:
        context.observe(masked_rows.OBSERVATION, value, case)
    return masked_rows.described(context, declared)


def test_described_names_one_convention_or_what_was_seen_where() -> None:
    assert _described() is None
    assert _described(("zeros", _Case("float64", "bool")), ("zeros/uniform", _Case("float32", "float"))) == "zeros"
    assert _described(("zeros/uniform", _Case("float64", "bool")), declared="uniform") == "uniform"
    assert _described(("uniform", _Case("float64", "bool")), ("nan", _Case("float64", "float")),
                      ("nan", _Case("float32", "float")), ("other", _Case("float32", "float"))) == (
        "inconsistent: uniform under bool masks at float64; nan under float masks at float64, float32; "
        "other values (not zeros, nan or uniform) under float masks at float32")


def test_described_reads_a_row_matching_two_conventions_as_the_one_seen_alone() -> None:
    assert _described(("zeros", _Case("float64", "bool")), ("nan", _Case("float64", "float")),
                      ("zeros/uniform", _Case("float32", "none"))) == (
        "inconsistent: zeros under bool masks at float64 and no mask at float32; nan under float masks at float64")


def test_described_joins_the_mask_kinds_seen_at_the_same_dtypes() -> None:
    assert _described(("zeros", _Case("float64", "bool")), ("zeros", _Case("float64", "float")),
                      ("nan", _Case(None, "bool"))) == (
        "inconsistent: zeros under bool and float masks at float64; nan under bool masks at any dtype")
