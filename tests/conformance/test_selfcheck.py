"""``kqv selfcheck`` and its float64 error bound (clause ``attention.accuracy``)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kqv.conformance import selfcheck
from kqv.conformance.cli import main
from kqv.reference import scaled_dot_product_attention
from kqv.reference.oracle import oracle_sdpa


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selfcheck_passes_at_several_seeds(seed: int) -> None:
    results = selfcheck.run(seed=seed, cases=15)
    failed = [r for r in results if r.status == "failed"]
    assert not failed, failed
    assert {r.clause for r in results} >= {"attention.accuracy", "attention.sdpa", "softmax.jacobian"}


def test_bound_catches_float64_computed_in_float32() -> None:
    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(10):
        query, key, value, mask = selfcheck._random_case(rng)
        lowered = scaled_dot_product_attention(
            *(a.astype(np.float32) for a in (query, key, value)), attn_mask=mask
        ).astype(np.float32).astype(np.float64)
        exact = oracle_sdpa(query, key, value, attn_mask=mask)
        bound = selfcheck._bound(query, key, value, mask)
        worst = max(worst, float(np.max(np.abs(lowered - exact) / bound)))
    assert worst > 100, f"float32 arithmetic only reached {worst:.3g} x the float64 bound"


def test_cli_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selfcheck", "--cases", "3"]) == 0
    assert "selfcheck:" in capsys.readouterr().out


@pytest.mark.parametrize("arguments", [[], ["nonsense"], ["selfcheck", "--cases", "0"], ["selfcheck", "--seed", "x"]])
def test_usage_errors_exit_2_without_traceback(arguments: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "kqv.conformance.cli", *arguments], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "usage: kqv" in done.stderr
