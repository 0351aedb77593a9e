"""A kernel that flushes subnormal results to zero (XLA on the CPU, CUDA code built with ``-ftz``) is correct: the
bounds allow each result lost to underflow the smallest normal number of the accumulation precision (``eta_s`` of
:mod:`kqv.conformance.tolerance`). The witness is torch's attention run with FTZ and DAZ on (tests/conformance/
flushing.py), on the case where jax-sdpa-cpu's float32 gradients fell below 2^-126 and came back 0 under the
``thorough`` profile at seed 1: without the allowance the same case fails, with it every clause passes."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

import flushing  # noqa: E402 - after the importorskip
from kqv.conformance import check, replay  # noqa: E402
from kqv.conformance.dtypes import UNDERFLOW  # noqa: E402
from kqv.conformance.tolerance import Precision  # noqa: E402

pytestmark = pytest.mark.skipif(not flushing.supported(), reason="this CPU cannot flush subnormals (x86 SSE3 only)")

# dK of this case has entries of about 1.8e-39, below float32's smallest normal number (1.18e-38).
BELOW_NORMAL = ('{"E": 6, "Ev": 6, "L": 2, "S": 464, "alignment": "top-left", "batch": [1], "dtype": "float32", '
                '"empty_rows": false, "is_causal": false, "kind": "sdpa", "mask": "float", "mask_pattern": "random", '
                '"mask_shape": "full", "scale": null, "seed": 4, "values": "normal", "variants": []}')
CLAUSES = ("gradient.weights", "gradient.accuracy")


def _replayed(clause: str, **options):
    report = replay(flushing.attention, "sdpa", clause=clause, case=BELOW_NORMAL, arrays="torch", name="flushed",
                    **options, **flushing.DECLARATION)
    return report.targets[0].clauses[0]


def test_the_underflow_allowance_is_the_smallest_normal_of_the_accumulation() -> None:
    assert Precision.of("float32").underflow == 2.0**-126
    assert Precision.of("float64").underflow == 2.0**-1022
    assert Precision.of("bfloat16").underflow == 2.0**-126  # sums in float32
    assert Precision.of("float16").underflow == 2.0**-25  # its own subnormal spacing is coarser than float32's flush
    assert Precision.of("float16", "dtype").underflow == 2.0**-14


@pytest.mark.parametrize("clause", CLAUSES)
def test_a_kernel_that_flushes_subnormals_passes_where_gradients_fall_below_the_smallest_normal(clause: str) -> None:
    result = _replayed(clause)
    assert result.status == "passed", result.message


@pytest.mark.parametrize("clause", CLAUSES)
def test_without_the_flush_allowance_the_same_case_fails(clause: str, monkeypatch: pytest.MonkeyPatch) -> None:
    of = Precision.of

    def gradual_only(cls, dtype: str, accumulation: str = "float32") -> Precision:
        return dataclasses.replace(of(dtype, accumulation), underflow=UNDERFLOW[dtype])

    monkeypatch.setattr(Precision, "of", classmethod(gradual_only))
    result = _replayed(clause, isolation=False)  # the bound is computed here, under the patch
    assert result.status == "failed" and "got 0" in result.message, result.message


def test_a_kernel_that_flushes_subnormals_passes_every_clause_in_the_quick_profile() -> None:
    report = check(flushing.attention, "sdpa", profile="quick", arrays="torch", name="flushed",
                   **flushing.DECLARATION)
    failed = {c.clause: c.message for c in report.targets[0].clauses if c.status not in ("passed", "skipped")}
    assert not failed, failed
