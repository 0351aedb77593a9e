"""Each broken backward pass of multi-head attention (tests/conformance/broken/mha_backward.py: a
torch.autograd.Function with a correct forward and a hand-written backward with one bug) fails the clause its bug
breaks, in the quick profile, with a case that replays; the same Function without a bug passes both clauses."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from broken import mha_backward  # noqa: E402 - after the importorskip
from caught import assert_caught  # noqa: E402
from kqv.conformance import check  # noqa: E402
from kqv.conformance.gradients import MHA_CLAUSES  # noqa: E402

BROKEN = [(name, getattr(mha_backward, name)) for name in sorted(vars(mha_backward))
          if hasattr(getattr(mha_backward, name), "breaks")]


def test_each_mha_gradient_clause_has_a_broken_backward() -> None:
    assert {fn.breaks for _, fn in BROKEN} == set(MHA_CLAUSES)


def test_the_function_without_a_bug_passes_both_clauses() -> None:
    report = check(mha_backward.multi_head, "mha", profile="quick", arrays="torch", dtypes=("float64", "float32"),
                   clauses=list(MHA_CLAUSES), name="correct", **mha_backward.DECLARATION)
    failed = {c.clause: c.message for c in report.targets[0].clauses if c.status != "passed"}
    assert not failed, failed


@pytest.mark.parametrize(("name", "fn"), BROKEN, ids=[name for name, _ in BROKEN])
def test_a_broken_mha_backward_fails_its_clause(name: str, fn) -> None:
    assert_caught(fn, "mha", profile="quick", arrays="torch", dtypes=("float64",))
