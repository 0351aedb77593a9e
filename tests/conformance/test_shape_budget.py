"""A budget of shapes (``Declaration.shapes``, kqv.conformance.kinds.sdpa.shapes): a backend that compiles per
shape is called on at most N sizes per dtype, every check still runs, and the bugs at tile boundaries are still
caught."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import pytest
from hypothesis import given, settings

from broken import tiles
from kqv.conformance import check
from kqv.conformance.checks import checks_for
from kqv.conformance.declaration import Declaration
from kqv.conformance.gradients import CLAUSES as GRADIENTS
from kqv.conformance.kinds.sdpa.shapes import pool
from kqv.conformance.profiles import PROFILES
from kqv.conformance.strategies import choice
from kqv.reference import scaled_dot_product_attention

SEEN: dict[str, set] = defaultdict(set)


def recording(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
              window=None, softcap=None, alibi_slopes=None, kv_lengths=None, sinks=None, return_lse=False):
    """The reference, noting the sizes of each call: (batch, L, S, E, Ev) per dtype."""
    SEEN[query.dtype.name].add((query.shape[:-2], query.shape[-2], key.shape[-2], query.shape[-1], value.shape[-1]))
    result = scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                                          enable_gqa=enable_gqa, window=window, softcap=softcap,
                                          alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks,
                                          return_lse=return_lse)
    return (result[0].astype(query.dtype), result[1]) if return_lse else result.astype(query.dtype)


@pytest.mark.parametrize("budget", [4, 6])
def test_a_budgeted_run_calls_the_backend_on_at_most_n_sizes_per_dtype_and_checks_every_clause(budget: int) -> None:
    SEEN.clear()
    report = check(recording, "sdpa", profile="quick", seed=budget, dtypes=("float32", "float16"), gqa=True,
                   window=True, softcap=True, alibi=True, kv_lengths=True, sinks=True, lse=True, shapes=budget,
                   isolation=False, masked_rows="zeros")
    target = report.targets[0]
    assert report.conformant, [c.message for c in target.clauses if c.status == "failed"]
    assert set(SEEN) == {"float32", "float16"}
    for dtype, sizes in SEEN.items():
        entries = pool(Declaration(gqa=True, window=True, softcap=True, alibi=True, kv_lengths=True, sinks=True,
                                   lse=True, shapes=budget),
                       dtype,
                       PROFILES["quick"].budgeted(budget, budget))
        drawn = {(s.batch, s.L, s.S, s.E, s.Ev) for s in entries}
        assert len(drawn) <= budget
        assert sizes <= drawn, (dtype, sizes - drawn)
    skipped = {c.clause for c in target.clauses if c.status == "skipped"}
    declared = Declaration(gqa=True, window=True, softcap=True, alibi=True, kv_lengths=True, sinks=True, lse=True)
    unbudgeted = {c.clause for c in checks_for("sdpa") if c.skip_reason(declared)}
    assert unbudgeted == {"mask.causal.bottom-right"} | set(GRADIENTS)  # no backward declared
    assert skipped == unbudgeted | {"cache.decode"}  # the budget leaves every check but decoding its shapes


DECLARATIONS = [Declaration(shapes=4, backward=True), Declaration(shapes=5, batch_dims=(0,), gqa=False, window=True),
                Declaration(shapes=4, batch_dims=(1,), gqa=True, cross_lengths=False, value_width=False,
                            backward=True),
                Declaration(shapes=8, batch_dims=(2,), gqa=True, window=True, causal_alignment="bottom-right",
                            alibi=True, backward=True),
                Declaration(shapes=12, gqa=True, window=True, alibi=True, sinks=True)]


@pytest.mark.parametrize("declaration", DECLARATIONS, ids=lambda d: f"shapes{d.shapes}-dims{d.batch_dims}")
@pytest.mark.parametrize("profile", ["quick", "ci", "thorough"])
def test_every_check_draws_its_cases_from_the_pool(declaration: Declaration, profile: str) -> None:
    budget = PROFILES[profile].budgeted(declaration.shapes, 3)
    for tiles_phase in (False, True):
        drawn_from = budget.at_tiles() if tiles_phase else budget
        entries = {(s.batch, s.L, s.S, s.E, s.Ev) for s in pool(declaration, "float32", drawn_from)}
        assert len(entries) <= declaration.shapes
        for item in checks_for("sdpa"):
            if item.skip_reason(declaration):
                continue

            @settings(max_examples=5, deadline=None, database=None)
            @given(item.strategy(declaration, "float32", drawn_from))
            def drawn(case):
                assert (case.batch, case.L, case.S, case.E, case.Ev) in entries, (item.clause, case)
                assert case.is_causal in (False, True) and type(case.is_causal) is bool

            drawn()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["keys_first_128", "keys_first_64", "head_dim_64", "last_query_tile_unwritten",
                                  "tiles_normalised_alone", "causal_ahead_in_second_tile"])
def test_a_budget_of_four_shapes_still_catches_the_tile_bugs(name: str, seed: int) -> None:
    report = check(getattr(tiles, name), "sdpa", profile="quick", seed=seed, clauses=["attention.tile-boundaries"],
                   name=name, dtypes=("float64",), shapes=4, isolation=False)
    [result] = report.targets[0].clauses
    assert result.status == "failed", (name, seed, result.message)


def test_the_budget_is_validated() -> None:
    with pytest.raises(ValueError, match=r"shapes: expected 0 \(no budget\) or an integer >= 4, got 2"):
        Declaration(shapes=2)
    with pytest.raises(ValueError, match="shapes: a budget of shapes applies to kind sdpa"):
        Declaration(kind="mha", shapes=6)
    for words, expected in ((["--shapes", "2"], "shapes: expected 0"), (["--shapes", "six"], "--shapes")):
        done = subprocess.run([sys.executable, "-m", "kqv.conformance.cli", "check", "numpy", "--kind", "sdpa", *words],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_choice_keeps_bools_and_integers_apart() -> None:
    # (True, False) == (1, 0) as tuples: a cache keyed on the tuple alone would hand out 1 for True.
    @settings(max_examples=20, deadline=None, database=None)
    @given(choice((0, 1)), choice((False, True)))
    def drawn(number, flag):
        assert type(number) is int and type(flag) is bool

    drawn()


def test_a_run_at_another_seed_draws_another_pool() -> None:
    declaration = Declaration(shapes=6, gqa=True)
    pools = {pool(declaration, "float32", PROFILES["ci"].budgeted(6, seed)) for seed in range(4)}
    assert len(pools) == 4
    large = [s for p in pools for s in p if s.tiles == 4 and s.L == s.S]
    assert len(large) >= 4 and all(s.S > 128 and s.E > 64 for s in large)  # past the tiles kernels stop at
