"""The blocked backward (:mod:`kqv.reference.blocked_backward`): ``P`` recomputed tile by tile from the lse.

It agrees with the dense backward within twice the float64 bound of ``backward_helpers.backward_bound`` (each
form is within the bound of the exact gradients; about ``1e-13`` of the gradients' magnitudes with logits of order
1, and ``u |x|`` relative with large logits ``x``, as ``x - lse`` replaces ``x - m``), on every option and
convention, with tiles of 1 to 4 rows and keys and causal diagonals in narrow blocks or not; its result does not
depend on the thread count; its memory grows with ``L E``, not ``L S``; and the comparison catches a tile left out.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from backward_helpers import GradCase, backward_bound, grad_cases
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import attention_cases, peak_memory

import kqv.reference.blocked as blocked
import kqv.reference.blocked_backward as blocked_backward
from kqv.conformance.compare import mismatch
from kqv.reference import Gradients, scaled_dot_product_attention_backward
from kqv.reference.blocked_backward import blocked_attention_backward

CASES = grad_cases(seed=2)


def _disagreement(case: GradCase, block_size=(2, 3), workers: int = 1, **extra) -> list:
    """The gradients where the blocked and dense forms of ``case`` differ by more than twice the float64 bound."""
    call = {**case.with_inputs(), **extra}
    arrays = call.pop("query"), call.pop("key"), call.pop("value"), case.grad_output
    dense = scaled_dot_product_attention_backward(*arrays, **call, method="dense")
    got = blocked_attention_backward(*arrays, **call, block_size=block_size, workers=workers)
    bound = backward_bound(GradCase(case.name, case.query, case.key, case.value, case.grad_output, call))
    found = []
    for name, mine, theirs in zip(Gradients._fields, got, dense):
        assert (mine is None) == (theirs is None) == (name not in bound), name
        if theirs is not None:
            assert mine.shape == theirs.shape and mine.dtype == np.float64, name
            found.append(mismatch(mine, theirs, 2 * bound[name], what=f"d{name} of {case}"))
    return [off for off in found if off is not None]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("block_size", [(1, 1), (2, 3), (4, 4)])
def test_every_option_agrees_with_the_dense_backward(case: GradCase, block_size) -> None:
    found = _disagreement(case, block_size)
    assert not found, found


@pytest.mark.parametrize("masked_rows", ["zeros", "nan", "uniform"])
def test_each_convention_agrees_with_the_dense_backward(masked_rows: str) -> None:
    case = next(case for case in CASES if case.name == "float mask, uniform")
    found = _disagreement(case, masked_rows=masked_rows)
    assert not found, found


blocks = st.tuples(st.integers(1, 4), st.integers(1, 4))


@settings(max_examples=60, deadline=None)
@given(case=attention_cases(keep_one=False), masked_rows=st.sampled_from(["zeros", "nan", "uniform"]), block=blocks,
       diagonal=st.sampled_from([0, 1, 64]), seed=st.integers(0, 2**16))
def test_random_calls_agree_with_the_dense_backward(case, masked_rows, block, diagonal, seed) -> None:
    """Masks of each kind and batch shape, both causal alignments, explicit scales, broadcast batch dims, logits
    up to 10^6."""
    batch = np.broadcast_shapes(case.query.shape[:-2], case.key.shape[:-2], case.value.shape[:-2])
    upstream = np.random.default_rng(seed).standard_normal(batch + (case.query.shape[-2], case.value.shape[-1]))
    grad_case = GradCase("drawn", case.query, case.key, case.value, upstream,
                         {**case.kwargs(), "masked_rows": masked_rows})
    with mock.patch.object(blocked, "DIAGONAL_KEYS", diagonal):
        found = _disagreement(grad_case, block)
    assert not found, found


def test_many_small_entries_in_one_item_on_two_threads() -> None:
    case = next(case for case in CASES if case.name == "sinks per batch, gqa")
    found = _disagreement(case, block_size=(64, 64), workers=2)
    assert not found, found


def test_results_do_not_depend_on_the_thread_count() -> None:
    rng = np.random.default_rng(1)
    query, key, value, upstream = (rng.standard_normal(shape) for shape in ((3, 20, 4), (3, 30, 4), (3, 30, 2),
                                                                             (3, 20, 2)))
    for options in ({"is_causal": True}, {"attn_mask": rng.random((20, 30)) < 0.8, "softcap": 1.5}):
        one, three = (blocked_attention_backward(query, key, value, upstream, **options, block_size=(4, 8),
                                                 workers=workers) for workers in (1, 3))
        assert all(a.tobytes() == b.tobytes() for a, b in zip(one[:3], three[:3]))


def test_a_key_block_left_out_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[0]
    assert not _disagreement(case, block_size=(2, 2))
    monkeypatch.setattr(blocked_backward, "key_blocks", lambda *args: list(blocked.key_blocks(*args))[:-1])
    assert len(_disagreement(case, block_size=(2, 2))) == 3


def test_auto_takes_the_blocked_backward_for_large_inputs() -> None:
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((2, 512, 4)) for _ in range(4)]
    auto = scaled_dot_product_attention_backward(*arrays)
    blocked_form = scaled_dot_product_attention_backward(*arrays, method="blocked")
    assert all(np.array_equal(a, b) for a, b in zip(auto[:3], blocked_form[:3]))


def test_memory_grows_with_l_times_e_not_l_times_s() -> None:
    rng = np.random.default_rng(4)
    peaks = {}
    for length in (1024, 4096):
        arrays = [rng.standard_normal((length, 8)) for _ in range(4)]
        peaks[length] = peak_memory(lambda: scaled_dot_product_attention_backward(
            *arrays, is_causal=True, method="blocked", block_size=(128, 256)))
    # Four times the length: L * E grows 4 times, L * S would grow 16 times (4096^2 weights are 128 MiB).
    assert peaks[4096] < 6 * peaks[1024], peaks
    assert peaks[4096] < 8 * 2**20, peaks
