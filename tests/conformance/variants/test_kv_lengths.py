"""Key lengths drawn for a backend that declares a departure from ``lengths.offset`` (ONNX: ``nonpad_kv_seqlen``
aligns bottom-right, its ``is_causal`` alone top-left): the departure is judged by the check of the offset, and the
other checks draw, under the causal rule or a window, only lengths the offset cannot move."""

from __future__ import annotations

from hypothesis import find, given, settings

from kqv.conformance import Declaration, ExpectedFailure
from kqv.conformance.kinds.sdpa import sdpa_cases
from kqv.conformance.profiles import PROFILES

DEPARTS = Declaration(kv_lengths=True, window=True, causal_alignment="top-left",
                      expected_failures=(ExpectedFailure("lengths.offset", "aligned by the lengths"),))
QUICK = PROFILES["quick"]


def _moved(case) -> bool:
    lengths = case.variant("kv_lengths")
    return lengths is not None and any(n != case.L for n in lengths)


@settings(max_examples=80, deadline=None, database=None)
@given(sdpa_cases(DEPARTS, "float32", QUICK, masks=("none", "bool"), causal=(False, True),
                  variants={"kv_lengths": {}}))
def test_other_checks_keep_the_lengths_the_offset_cannot_move(case) -> None:
    if case.is_causal or case.variant("window") is not None:
        assert not _moved(case), case


def test_the_check_of_the_offset_draws_any_length_and_other_backends_are_unchanged() -> None:
    settings_ = settings(max_examples=200, deadline=None, database=None)
    causal = dict(masks=("none",), causal=(True,), min_length=2)
    find(sdpa_cases(DEPARTS, "float32", QUICK, variants={"kv_lengths": {"any_offset": True}}, **causal), _moved,
         settings=settings_)
    find(sdpa_cases(DEPARTS.replace(expected_failures=()), "float32", QUICK, variants={"kv_lengths": {}}, **causal),
         _moved, settings=settings_)
