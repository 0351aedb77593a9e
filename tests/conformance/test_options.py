"""One option schema serves ``kqv check``, the pytest plugin and ``kqv.conformance.check``; overriding a
declaration makes a new Backend and leaves the user's as it was."""

from __future__ import annotations

import dataclasses

import pytest

from kqv.conformance import Backend, Declaration, check
from kqv.conformance.backends.numpy_reference import sdpa as reference
from kqv.conformance.cli import build_parser
from kqv.conformance.declaration import FIELDS
from kqv.conformance.options import NOT_OPTIONS, OPTIONS, OptionError, command_words, from_assignments, with_overrides


def _check_parser():
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices["check"]


def test_every_declaration_field_is_an_option_of_the_command_line() -> None:
    flags = {flag for action in _check_parser()._actions for flag in action.option_strings}
    for name in FIELDS:
        if name in NOT_OPTIONS:
            continue
        assert OPTIONS[name].flag in flags, name
        if FIELDS[name].type == "bool":
            assert "--no-" + name.replace("_", "-") in flags, name  # every bool can be set either way
    assert "--gqa" in flags and "--no-gqa" in flags  # the variant's field, from its declaration


@pytest.mark.parametrize(("words", "expected"), [
    (["--masked-rows", "nan"], {"masked_rows": "nan"}),
    (["--no-float-mask", "--gqa"], {"float_mask": False, "gqa": True}),
    (["--no-non-causal", "--no-cross-attention", "--no-odd-d-model"],
     {"non_causal": False, "cross_attention": False, "odd_d_model": False}),
    (["--dtypes", "float32,bfloat16", "--batch-dims", "1,2"], {"dtypes": ("float32", "bfloat16"),
                                                              "batch_dims": (1, 2)}),
    (["--backward"], {"backward": True}),
    (["--no-backward", "--no-deterministic"], {"backward": False, "deterministic": False}),
])
def test_the_command_line_and_the_pytest_assignments_read_the_same_values(words, expected) -> None:
    from kqv.conformance.options import from_namespace

    arguments = build_parser().parse_args(["check", "numpy", *words])
    assert from_namespace(arguments) == expected
    assignments = [f"{name}={','.join(map(str, v)) if isinstance(v, tuple) else str(v).lower()}"
                   for name, v in expected.items()]
    assert from_assignments(assignments) == expected
    again = build_parser().parse_args(["check", "numpy", *command_words(expected)])
    assert from_namespace(again) == expected  # the reproduce command sets the same fields


@pytest.mark.parametrize(("items", "message"), [
    (["masked_rows"], "expected NAME=VALUE"),
    (["maskedrows=nan"], "unknown field 'maskedrows'"),
    (["gqa=maybe"], "gqa: expected true or false, got 'maybe'"),
    (["masked_rows=ones"], "masked_rows: expected one of zeros, nan, uniform"),
    (["batch_dims=1,x"], "batch_dims: expected integers"),
])
def test_bad_assignments_name_the_field(items, message) -> None:
    with pytest.raises(OptionError, match=message):
        from_assignments(items)


def test_overrides_make_a_new_backend() -> None:
    mine = Backend("mine", reference, Declaration(masked_rows="zeros"))
    other = with_overrides(mine, {"gqa": True, "dtypes": ("float32",)})
    assert other is not mine and other.declaration.gqa and other.declaration.dtypes == ("float32",)
    assert mine.declaration == Declaration(masked_rows="zeros")  # untouched
    assert with_overrides(mine, {}) is mine


def test_the_python_api_does_not_change_the_backend_it_is_given() -> None:
    mine = Backend("mine", reference, Declaration(masked_rows="zeros"))
    before = dataclasses.replace(mine.declaration)
    report = check(mine, profile="quick", clauses=["gqa.multi-query"], gqa=True)
    assert report.targets[0].clauses[0].status == "passed"
    assert mine.declaration == before and not mine.declaration.gqa


def test_a_builtin_is_built_afresh_for_each_run() -> None:
    from kqv.conformance.backends import builtin

    check("numpy", "sdpa", profile="quick", clauses=["attention.shape"], dtypes=("float32",))
    assert builtin("numpy")["sdpa"].declaration.dtypes[0] == "float64"


def test_backward_takes_the_backward_callable_of_a_function_target() -> None:
    from kqv.conformance.options import backward_target, from_namespace

    arguments = build_parser().parse_args(["check", "mine.py:attention", "--backward", "mine.py:attention_backward"])
    assert arguments.targets == ["mine.py:attention"]
    assert backward_target(from_namespace(arguments)) == ({"backward": True}, "mine.py:attention_backward")
    assert backward_target({"backward": True}) == ({"backward": True}, None)
