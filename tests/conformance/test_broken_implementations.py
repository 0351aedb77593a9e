"""Each deliberately broken implementation fails the clause its bug breaks (the suite's power).

The set lives in ``tests/conformance/broken``: one plausible bug per function, each marked with
the clause it breaks. A failure must come with its shrunk counterexample and a replay command
that reproduces it.
"""

from __future__ import annotations

import pytest

from broken import alibi, gqa, kv_lengths, lse, mha, pe, realistic, sdpa, sinks, softcap, tiles, window
from caught import assert_caught
from kqv.conformance import check

BROKEN = [(kind, name, getattr(module, name))
          for module, kind in ((sdpa, "sdpa"), (gqa, "sdpa"), (tiles, "sdpa"), (window, "sdpa"), (softcap, "sdpa"),
                               (alibi, "sdpa"), (realistic, "sdpa"),
                               (kv_lengths, "sdpa"), (sinks, "sdpa"), (lse, "sdpa"),
                               (mha, "mha"),
                               (pe, "pe"))
          for name in sorted(vars(module)) if hasattr(getattr(module, name), "breaks")]


def test_the_set_covers_every_kind_and_many_clauses() -> None:
    assert len(BROKEN) >= 40
    assert {kind for kind, _, _ in BROKEN} == {"sdpa", "mha", "pe"}
    assert len({fn.breaks for _, _, fn in BROKEN}) >= 30


@pytest.mark.parametrize(("kind", "name", "fn"), BROKEN, ids=[f"{kind}-{name}" for kind, name, _ in BROKEN])
def test_broken_implementation_fails_its_clause(kind: str, name: str, fn) -> None:
    assert_caught(fn, kind, profile="ci")


TILES = [(name, fn) for kind, name, fn in BROKEN if fn.__module__ == tiles.__name__]


def test_the_tile_bugs_are_all_here() -> None:
    assert len(TILES) == 7


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("name", "fn"), TILES, ids=[name for name, _ in TILES])
def test_a_tile_bug_fails_in_the_quick_profile(name: str, fn, seed: int) -> None:
    # The quick profile draws lengths and widths up to 8, and past the first tile only at tile boundaries.
    report = check(fn, "sdpa", profile="quick", seed=seed, clauses=[fn.breaks], name=name, **fn.declaration)
    [result] = report.targets[0].clauses
    assert result.status == "failed", f"{name} was not caught at seed {seed}: {result.message}"
