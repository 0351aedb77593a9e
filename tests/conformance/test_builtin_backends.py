"""Every built-in correct backend passes every clause that applies to it, at several seeds.

A flaky check is a bug of the first order: these run the whole suite on correct implementations
(kqv's reference, torch's SDPA and MultiheadAttention, and reference variants with the other
conventions) and accept no failure at any seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from kqv.conformance import Backend, Declaration, check
from kqv.conformance.profiles import profile as lookup_profile
from kqv.conformance.gradients import CLAUSES as GRADIENTS, MHA_CLAUSES
from kqv.conformance.variants import VARIANTS
from kqv.reference import scaled_dot_product_attention

torch = pytest.importorskip("torch")

BUILTINS = [("numpy", "sdpa"), ("numpy", "mha"), ("numpy", "pe"), ("torch-sdpa-cpu", "sdpa"), ("torch-mha-cpu", "mha")]
# The only clauses a top-left backend cannot be checked on.
EXPECTED_SKIPS = {"sdpa": {"mask.causal.bottom-right"}, "mha": set(), "pe": set()}


def _outcome(report):
    [target] = report.targets
    failed = {c.clause: c.message for c in target.clauses if c.status in ("failed", "xfailed", "xpassed")}
    skipped = {c.clause for c in target.clauses if c.status == "skipped"}
    return target, failed, skipped


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("target", "kind"), BUILTINS, ids=[f"{t}-{k}" for t, k in BUILTINS])
def test_builtin_backend_passes_every_applicable_clause(target: str, kind: str, seed: int) -> None:
    # The gradient clauses at seed 0 only, to keep the suite lean (test_gradients.py checks each kernel's backward).
    lean = {"backward": False} if kind in ("sdpa", "mha") and seed else {}
    report, failed, skipped = _outcome(check(target, kind, profile="quick", seed=seed, **lean))
    assert not failed, failed
    assert skipped == EXPECTED_SKIPS[kind] | _undeclared_variants(report.variants if kind == "sdpa" else None) \
        | (set(GRADIENTS if kind == "sdpa" else MHA_CLAUSES) if lean else set())
    assert report.conformant


def _undeclared_variants(declared):
    """The clauses of the variants a backend of kind sdpa does not declare (skipped, never failed)."""
    if declared is None:
        return set()
    return {clause for name, variant in VARIANTS.items() if name not in declared for clause in variant.clauses}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available here")
@pytest.mark.parametrize("seed", [0, 1])
def test_torch_sdpa_on_cuda_passes_every_applicable_clause(seed: int) -> None:
    target, failed, skipped = _outcome(check("torch-sdpa-cuda", "sdpa", profile="quick", seed=seed))
    assert not failed, failed
    assert skipped == EXPECTED_SKIPS["sdpa"] | _undeclared_variants(target.variants)


def test_without_cuda_the_cuda_backend_is_reported_unavailable() -> None:
    from kqv.conformance.backends import builtin

    reason = builtin("torch-sdpa-cuda")["sdpa"].unavailable()
    assert (reason is None) == torch.cuda.is_available()
    if reason:
        assert "CUDA is not available" in reason


def test_numpy_sdpa_passes_the_ci_profile() -> None:
    _, failed, skipped = _outcome(check("numpy", "sdpa", profile="ci", seed=3))
    assert not failed, failed
    assert skipped == EXPECTED_SKIPS["sdpa"]


def _reference(**options):
    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, window=None, softcap=None,
             alibi_slopes=None, kv_lengths=None, sinks=None, return_lse=False):
        result = scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale, window=window,
                                              softcap=softcap, alibi_slopes=alibi_slopes, kv_lengths=kv_lengths,
                                              sinks=sinks, return_lse=return_lse, **options)
        return (result[0].astype(query.dtype), result[1]) if return_lse else result.astype(query.dtype)
    return sdpa


@pytest.mark.parametrize("seed", [0, 1])
def test_a_bottom_right_backend_passes_under_its_declared_alignment(seed: int) -> None:
    backend = Backend("bottom-right", _reference(causal_alignment="bottom-right"),
                      Declaration(causal_alignment="bottom-right", masked_rows="zeros", window=True,
                                  softcap=True, alibi=True, kv_lengths=True, sinks=True, lse=True))
    _, failed, skipped = _outcome(check(backend, profile="quick", seed=seed))
    assert not failed, failed
    # neither the variant nor the backward pass is declared
    assert skipped == {"mask.causal.top-left"} | set(VARIANTS["gqa"].clauses) | set(GRADIENTS)


@pytest.mark.parametrize("convention", ["zeros", "nan", "uniform"])
def test_an_undeclared_masked_row_convention_is_observed_and_reported(convention: str) -> None:
    report = check(_reference(masked_rows=convention), "sdpa", profile="quick", name=f"reference-{convention}")
    target, failed, _ = _outcome(report)
    assert not failed, failed
    assert target.conventions["masked_rows"] == {"value": convention, "source": "observed"}


def test_a_declared_convention_other_than_the_one_followed_fails() -> None:
    report = check(_reference(masked_rows="uniform"), "sdpa", profile="quick", clauses=["mask.fully-masked-row"],
                   masked_rows="zeros")
    _, failed, _ = _outcome(report)
    assert set(failed) == {"mask.fully-masked-row"}
    assert "declared convention 'zeros'" in failed["mask.fully-masked-row"]
    assert "uniform" in failed["mask.fully-masked-row"]


def test_torch_float16_and_bfloat16_stay_within_the_model_with_float32_accumulation() -> None:
    # torch computes half precision in float32 inside: its error is the output's own rounding.
    _, failed, _ = _outcome(check("torch-sdpa-cpu", "sdpa", profile="quick", seed=5, dtypes=("float16", "bfloat16"),
                                  clauses=["attention.accuracy", "softmax.stable", "mask.additive"]))
    assert not failed, failed


def test_every_dtype_is_checked_by_default_on_the_builtins() -> None:
    report = check("numpy", "sdpa", profile="quick", clauses=["attention.sdpa"])
    [result] = report.targets[0].clauses
    assert [d.dtype for d in result.dtypes] == ["float64", "float32", "float16", "bfloat16"]
    assert all(d.status == "passed" and d.examples > 0 for d in result.dtypes)
    quick = lookup_profile("quick")
    assert np.all([d.examples <= quick.examples + quick.tile_examples for d in result.dtypes])
