"""Each broken backward pass (tests/conformance/broken/backward.py: a torch.autograd.Function with a correct forward
and a hand-written backward with one classic bug) fails the gradient clause its bug breaks, in the quick profile,
with a case that replays; the same Function without a bug passes every gradient clause."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from broken import backward  # noqa: E402 - after the importorskip
from caught import assert_caught  # noqa: E402
from kqv.conformance import check  # noqa: E402
from kqv.conformance.gradients import CLAUSES  # noqa: E402

BROKEN = [(name, getattr(backward, name)) for name in sorted(vars(backward))
          if hasattr(getattr(backward, name), "breaks")]


def test_one_broken_backward_per_classic_bug() -> None:
    assert {fn.breaks for _, fn in BROKEN} == {"gradient.masked-row", "gradient.group-sum", "gradient.scores",
                                               "gradient.query", "gradient.key", "gradient.causal", "gradient.value",
                                               "gradient.accuracy"}


def test_the_function_without_a_bug_passes_every_gradient_clause() -> None:
    report = check(backward.attention, "sdpa", profile="quick", arrays="torch", dtypes=("float64",), backward=True,
                   gqa=True, masked_rows="zeros", clauses=list(CLAUSES), name="correct")
    failed = {c.clause: c.message for c in report.targets[0].clauses if c.status != "passed"}
    assert not failed, failed


@pytest.mark.parametrize(("name", "fn"), BROKEN, ids=[name for name, _ in BROKEN])
def test_a_broken_backward_fails_its_clause(name: str, fn) -> None:
    assert_caught(fn, "sdpa", profile="quick", arrays="torch")
