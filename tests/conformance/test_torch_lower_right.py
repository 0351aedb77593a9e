"""``torch-sdpa-cpu-lower-right``: torch's ``is_causal`` given as ``causal_lower_right(L, S)``, judged bottom-right.

The measured facts of :mod:`kqv.conformance.backends.torch_sdpa_lower_right` (the bias is the rule
``j <= i + S - L``, rows ``i < L - S`` give zeros with a warning about NaNs, no other mask beside it), the clauses
the mapping is for at the quick profile, and a wrong mapping (torch's top-left ``is_causal=True``) that fails them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kqv.conformance import Backend, check
from kqv.conformance.backends import builtin
from kqv.reference import scaled_dot_product_attention as reference

torch = pytest.importorskip("torch")

from kqv.conformance.backends import torch_sdpa, torch_sdpa_lower_right  # noqa: E402

TARGET = "torch-sdpa-cpu-lower-right"
CLAUSES = ["mask.causal.bottom-right", "mask.fully-masked-row", "cache.decode", "gqa.head-mapping"]


def _arrays(L: int, S: int, Hq: int = 4, Hkv: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(2, Hq, L, 5, dtype=torch.float64, generator=generator)  # (B, Hq, L, E)
    key = torch.randn(2, Hkv, S, 5, dtype=torch.float64, generator=generator)  # (B, Hkv, S, E)
    value = torch.randn(2, Hkv, S, 3, dtype=torch.float64, generator=generator)  # (B, Hkv, S, Ev)
    return query, key, value


def _by_alignment(query, key, value, **options):
    arrays = [t.numpy() for t in (query, key, value)]
    return {a: reference(*arrays, is_causal=True, causal_alignment=a, **options) for a in ("top-left", "bottom-right")}


@pytest.mark.parametrize(("L", "S"), [(3, 7), (1, 6), (5, 5), (6, 2)])
def test_is_causal_is_the_bottom_right_rule_with_grouped_heads(L: int, S: int) -> None:
    query, key, value = _arrays(L, S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # L > S: torch warns of NaNs (the next test)
        got = torch_sdpa_lower_right.lower_right(query, key, value, is_causal=True, enable_gqa=True).numpy()
    expected = _by_alignment(query, key, value, enable_gqa=True)
    np.testing.assert_allclose(got, expected["bottom-right"], rtol=1e-12, atol=1e-12)
    assert (L == S) == np.allclose(got, expected["top-left"])


def test_rows_before_the_offset_keep_no_key_and_give_zeros_despite_the_warning() -> None:
    query, key, value = _arrays(6, 2)
    with pytest.warns(UserWarning, match="NaNs"):
        got = torch_sdpa_lower_right.lower_right(query, key, value, is_causal=True, enable_gqa=True)
    assert torch.all(got[..., :4, :] == 0)  # rows i < L - S = 4 keep no key
    assert torch.all(got[..., 4:, :] != 0) and not torch.isnan(got).any()


def test_the_bias_takes_no_other_mask() -> None:
    from torch.nn.attention.bias import causal_lower_right

    query, key, value = _arrays(3, 5, Hq=2)
    with pytest.raises(ValueError, match="causal=True"):  # torch's own refusal of the bias with is_causal
        torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=causal_lower_right(3, 5),
                                                         is_causal=True)
    keep = torch.ones(3, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match="mask_with_causal=False"):
        torch_sdpa_lower_right.lower_right(query, key, value, attn_mask=keep, is_causal=True)
    assert not builtin(TARGET)["sdpa"].declaration.mask_with_causal


@pytest.mark.parametrize("seed", [0, 1])
def test_the_quick_profile_passes_the_clauses_of_the_mapping(seed: int) -> None:
    [target] = check(TARGET, "sdpa", profile="quick", seed=seed, clauses=CLAUSES).targets
    assert {c.clause: c.status for c in target.clauses} == dict.fromkeys(CLAUSES, "passed")
    assert target.conventions["causal_alignment"]["value"] == "bottom-right"


@pytest.mark.parametrize("clause", ["mask.causal.bottom-right", "cache.decode"])
def test_torch_top_left_is_causal_under_the_bottom_right_declaration_fails_and_is_named(clause: str) -> None:
    correct = builtin(TARGET)["sdpa"]
    broken = Backend("torch-sdpa-cpu-top-left-as-lower-right", torch_sdpa.sdpa, correct.declaration, correct.adapter)
    [target] = check(broken, profile="quick", seed=0, clauses=[clause], dtypes=("float64",), isolation=False).targets
    [result] = target.clauses
    assert result.clause == clause and result.status == "failed", result
    assert "causal aligned the other way" in result.message, result.message


def test_its_gradients_pass_and_top_left_gradients_under_its_declaration_fail() -> None:
    clauses = ["gradient.accuracy", "gradient.causal", "gradient.masked-row"]
    [target] = check(TARGET, "sdpa", profile="quick", seed=0, clauses=clauses).targets
    assert {c.clause: c.status for c in target.clauses} == dict.fromkeys(clauses, "passed")
    correct = builtin(TARGET)["sdpa"]
    broken = Backend("torch-sdpa-cpu-top-left-as-lower-right", torch_sdpa.sdpa, correct.declaration, correct.adapter)
    [target] = check(broken, profile="quick", seed=0, clauses=["gradient.accuracy"], dtypes=("float64",),
                     isolation=False).targets
    assert [c.status for c in target.clauses] == ["failed"], target.clauses


def test_without_causal_lower_right_the_backend_is_unavailable_with_the_reason(monkeypatch) -> None:
    import sys

    assert torch_sdpa_lower_right.LowerRightAdapter("cpu").unavailable() is None
    monkeypatch.setitem(sys.modules, "torch.nn.attention.bias", None)  # the import now fails
    reason = torch_sdpa_lower_right.LowerRightAdapter("cpu").unavailable()
    assert reason and "causal_lower_right" in reason
