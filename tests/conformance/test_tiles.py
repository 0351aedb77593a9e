"""Tile boundaries (clause ``attention.tile-boundaries``): every profile draws lengths and widths on
either side of the tile sizes, the masks meet the tiles, a failure shrinks to the smallest boundary
and names what the output computes instead."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from broken import tiles
from keeps import keeps
from kqv.conformance import check
from kqv.conformance.declaration import Declaration
from kqv.conformance.kinds.mha.strategy import mha_cases
from kqv.conformance.kinds.pe.strategy import pe_cases
from kqv.conformance.kinds.sdpa import sdpa_cases
from kqv.conformance.kinds.sdpa.case import MASKS, SdpaCase
from kqv.conformance.profiles import PROFILES


def test_the_boundaries_of_each_profile() -> None:
    quick, ci = PROFILES["quick"], PROFILES["ci"]
    assert quick.length_boundaries() == (15, 16, 17, 31, 32, 33, 63, 64, 65, 112, 113, 114, 127, 128, 129, 202, 203,
                                         204, 255, 256, 257)
    assert ci.length_boundaries()[-3:] == (511, 512, 513) and PROFILES["thorough"].length_boundaries()[-1] == 513
    assert all(p.width_boundaries()[-1] == 257 for p in PROFILES.values())
    assert quick.pe_length_boundaries()[-3:] == (1023, 1024, 1025)
    assert all(p.tile_examples > 0 and p.tile_clause_examples > 0 for p in PROFILES.values())


@pytest.mark.parametrize("name", ["quick", "ci"])
def test_at_tiles_one_size_sits_on_a_boundary_and_every_row_keeps_a_key(name: str) -> None:
    profile = PROFILES[name].at_tiles()
    boundaries = set(profile.length_boundaries()) | set(profile.width_boundaries())

    @settings(max_examples=150, deadline=None, database=None)
    @given(sdpa_cases(Declaration(gqa=True, causal_alignment="bottom-right"), "float32", profile, masks=MASKS,
                      causal=(False, True)))
    def run(case):
        assert {case.L, case.S, case.E, case.Ev} & boundaries
        assert keeps(case).any(axis=-1).all()  # no false alarm: the checks not about empty rows never see one

    run()


@settings(max_examples=60, deadline=None)
@given(case=sdpa_cases(Declaration(), "float64", PROFILES["quick"], masks=("bool", "float"), causal=(False, True),
                       every_tile=True))
def test_the_clause_draws_every_size_at_a_boundary(case: SdpaCase) -> None:
    profile = PROFILES["quick"]
    assert case.S in profile.length_boundaries() and case.L in profile.length_boundaries()
    assert case.E in profile.width_boundaries() and case.Ev in profile.width_boundaries()
    assert keeps(case).any(axis=-1).all()


def test_the_masks_meet_the_tiles() -> None:
    base = SdpaCase(dtype="float64", L=40, S=200, E=4, Ev=4, mask="bool", seed=5)
    gap = keeps(SdpaCase(**{**base.__dict__, "mask_pattern": "tile-gap"}))
    assert (~gap.any(axis=0)).sum() >= 16  # a whole tile of keys masked for every query
    last = keeps(SdpaCase(**{**base.__dict__, "mask_pattern": "last-tile"}))
    kept = np.flatnonzero(last.any(axis=0))
    assert kept.min() >= 128 and last.any(axis=-1).all()  # only the last, partial tile (of 16 to 128 keys) kept


@settings(max_examples=40, deadline=None)
@given(case=mha_cases(Declaration(kind="mha"), "float64", PROFILES["quick"].at_tiles()),
       pe=pe_cases(Declaration(kind="pe"), PROFILES["quick"].at_tiles()))
def test_mha_and_pe_reach_their_boundaries(case, pe) -> None:
    widths, lengths = set(PROFILES["quick"].width_boundaries()), set(PROFILES["quick"].length_boundaries())
    assert {case.d_k, case.d_model} & widths or case.S in lengths
    assert pe.d_model in widths and pe.length in PROFILES["quick"].pe_length_boundaries()


def test_every_check_judged_against_the_reference_draws_boundary_cases_too() -> None:
    report = check("numpy", "sdpa", profile="quick", clauses=["attention.accuracy", "attention.shape"],
                   dtypes=("float32",))
    results = {c.clause: c for c in report.targets[0].clauses}
    profile = PROFILES["quick"]
    assert results["attention.accuracy"].dtypes[0].examples == profile.examples + profile.tile_examples
    assert results["attention.shape"].dtypes[0].examples == profile.examples  # not judged against the reference


NAMES = {"keys_first_128": "attends only to the first 128 keys", "keys_first_64": "attends only to the first 64 keys",
         "head_dim_64": "uses only the first 64 features", "last_query_tile_unwritten": "the last partial tile of 64 "
         "rows", "tiles_normalised_alone": "each tile of 64 keys is shifted by its own max",
         "value_features_64": "writes only the first 64 value features"}
SMALLEST = {"keys_first_128": "S=129", "keys_first_64": "S=65", "head_dim_64": "E=65",
            "last_query_tile_unwritten": "L=65", "tiles_normalised_alone": "S=65", "value_features_64": "Ev=65"}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_a_tile_bug_is_named_and_shrinks_to_the_smallest_boundary(name: str) -> None:
    fn = getattr(tiles, name)
    report = check(fn, "sdpa", profile="quick", clauses=["attention.tile-boundaries"], name=name, dtypes=("float64",))
    [result] = report.targets[0].clauses
    assert result.status == "failed"
    assert NAMES[name] in result.message, result.message
    assert any(NAMES[name] in named["description"] for named in result.departures), result.departures
    assert f"{SMALLEST[name]}," in result.counterexample.splitlines()[0], result.counterexample.splitlines()[0]


def test_a_correct_backend_is_not_named() -> None:
    report = check("numpy", "sdpa", profile="ci", seed=7, clauses=["attention.tile-boundaries"])
    [result] = report.targets[0].clauses
    assert result.status == "passed", result.message


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_passes_at_the_tile_boundaries(seed: int) -> None:
    pytest.importorskip("torch")
    for target, kind in (("torch-sdpa-cpu", "sdpa"), ("torch-sdpa-cpu-flash", "sdpa"), ("torch-mha-cpu", "mha")):
        report = check(target, kind, profile="quick", seed=seed, clauses=["attention.tile-boundaries"])
        [result] = report.targets[0].clauses
        assert result.status == "passed", (target, result.message)


def test_the_runner_seeds_each_clause_and_dtype_apart() -> None:
    from kqv.conformance.runner import case_seed

    seeds = {case_seed(0, clause, dtype) for clause in ("attention.accuracy", "mask.bool")
             for dtype in ("float64", "float32", "float16", "bfloat16")}
    assert len(seeds) == 8
    assert case_seed(3, "mask.bool", "float32") == case_seed(3, "mask.bool", "float32")
