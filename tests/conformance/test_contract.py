"""The target's signature is checked against its kind's contract before any case runs: a function that cannot take
the call stops the run with both signatures (exit status 2), and nothing whose signature cannot be read is refused."""

from __future__ import annotations

import functools
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import find

from kqv.conformance import Declaration, check
from kqv.conformance.backends import BUILTINS, builtin
from kqv.conformance.backends.numpy_reference import sdpa as reference
from kqv.conformance.contract import VARIANT_KEYWORDS, refusal
from kqv.conformance.kinds.sdpa.strategy import sdpa_cases
from kqv.conformance.profiles import PROFILES
from kqv.conformance.variants import VARIANTS

SDPA = "fn(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None)"


def two_arguments(q, k):
    return q


def no_keywords(query, key, value):
    return reference(query, key, value)


def mha_without_heads(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, attn_mask=None,
                      is_causal=False):
    return x_q


def pe_of_length(length):
    return length


def test_a_function_with_too_few_parameters_exits_2_with_both_signatures(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("def attention(q, k):\n    return q\n")
    done = subprocess.run([sys.executable, "-m", "kqv.conformance.cli", "check", f"{tmp_path / 'mine.py'}:attention",
                           "--profile", "quick"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "checking" not in done.stderr  # stopped before any case ran
    assert f"the sdpa contract: {SDPA}" in done.stderr
    assert "the target:        attention(q, k)" in done.stderr
    assert "too many positional arguments" in done.stderr


@pytest.mark.parametrize(("fn", "declaration", "expected"), [
    (two_arguments, Declaration(), "it cannot be called as fn(query, key, value)"),
    (no_keywords, Declaration(), "--no-bool-mask --no-float-mask if it takes no attn_mask; --no-causal if it takes no "
                                 "is_causal; --no-scale if it takes no scale"),
    (reference, Declaration(gqa=True, window=True), None),
    (lambda query, key, value, attn_mask=None, is_causal=False, scale=None: query, Declaration(gqa=True),
     "--no-gqa if it takes no enable_gqa"),
    (mha_without_heads, Declaration(kind="mha"), "got an unexpected keyword argument 'num_heads'"),
    (pe_of_length, Declaration(kind="pe"), "the pe contract: fn(length, d_model)"),
])
def test_the_refusal_names_what_the_call_cannot_pass(fn, declaration, expected) -> None:
    refused = refusal(fn, declaration, "target")
    if expected is None:
        assert refused is None
    else:
        assert refused is not None and expected in refused, refused


def test_declaring_what_a_function_does_not_take_lets_it_through() -> None:
    declaration = Declaration(bool_mask=False, float_mask=False, causal=False, scale=False)
    assert refusal(no_keywords, declaration, "target") is None


def test_the_python_api_refuses_it_before_any_case_runs() -> None:
    calls = []

    def counted(q, k):
        calls.append(1)
        return q

    with pytest.raises(TypeError, match=r"the sdpa contract: fn\(query, key, value"):
        check(counted, "sdpa", profile="quick")
    assert not calls


class TakesAnything:
    def __call__(self, *args, **kwargs):
        return reference(*args, **kwargs)


def _wrapped(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("fn", [
    functools.partial(reference, dropout_p=0.0),  # a partial of a fitting function
    TakesAnything(),  # an object taking anything
    _wrapped(two_arguments),  # a decorator's wrapper that takes anything: what the inner one takes is not certain
    math.hypot, len,  # builtins: their signature is not judged
], ids=["partial", "callable-object", "wrapper", "builtin", "builtin-len"])
def test_what_cannot_be_judged_is_never_refused(fn) -> None:
    assert refusal(fn, Declaration(), "target") is None


def test_torch_ops_are_never_refused() -> None:
    torch = pytest.importorskip("torch")
    for fn in (torch.nn.functional.scaled_dot_product_attention, torch.nn.MultiheadAttention(4, 2)):
        assert refusal(fn, Declaration(), "target") is None


def test_every_builtin_backend_takes_its_calls() -> None:
    for name in BUILTINS:
        for backend in builtin(name).values():
            assert refusal(backend.fn, backend.declaration, name) is None, name


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_keyword_of_each_variant_is_the_one_its_calls_pass(name: str) -> None:
    declaration = Declaration(batch_dims=(2,), **{name: True})
    case = find(sdpa_cases(declaration, "float64", PROFILES["quick"], variants={name: {}}),
                lambda c: c.variant(name) is not None)
    assert set(case.build().call_keywords) == {VARIANT_KEYWORDS[name]}
