"""The blocked, online-softmax form of the reference (clause ``softmax.online``).

It agrees with the dense form to float64 rounding, with every mask kind, alignment and
convention, on blocks small enough that several of them cover each generated case; it is within
the float64 bound of the exact (mpmath) result; its memory grows with L * E, not L * S; its result
does not depend on the thread count; and the comparison catches a wrong rescaling.

The bound: both forms are within ``B`` of the exact result, ``B`` the tolerance model of
``kqv.conformance.kinds.sdpa.bound`` at float64 (clause ``attention.accuracy``, derived in
docs/error-model.md, and counting one online-softmax rescaling per key), so they are within ``2 B``
of each other.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import Case, attention_cases, peak_memory

import kqv.reference.blocked as blocked
from kqv.conformance.kinds.sdpa.bound import sdpa_expectation
from kqv.conformance.kinds.sdpa.case import SdpaInputs
from kqv.conformance.compare import mismatch
from kqv.conformance.tolerance import Precision
from kqv.reference import scaled_dot_product_attention
from kqv.reference.blocked import blocked_attention
from kqv.reference.oracle import oracle_sdpa

CONVENTIONS = ("zeros", "nan", "uniform")
TINY = np.finfo(np.float64).tiny


def _bound(case: Case, masked_rows: str) -> np.ndarray:
    """``B``: the float64 tolerance model of the exact result of ``case``, ``(..., L, Ev)``."""
    inputs = SdpaInputs(case.query, case.key, case.value, case.attn_mask, case.is_causal, case.scale)
    return sdpa_expectation(inputs, Precision.of("float64"), case.causal_alignment, masked_rows).bound


def _blocked(case: Case, masked_rows: str = "zeros", block_size=(2, 3), workers: int = 1) -> np.ndarray:
    return blocked_attention(case.query, case.key, case.value, **case.kwargs(), masked_rows=masked_rows,
                             block_size=block_size, workers=workers)


def _against_dense(case: Case, masked_rows: str, got: np.ndarray):
    """None when ``got`` is within ``2 B`` of the dense form, else the mismatch."""
    dense = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs(), masked_rows=masked_rows,
                                         method="dense")
    return mismatch(got, dense, 2 * _bound(case, masked_rows) + TINY)


blocks = st.tuples(st.integers(1, 4), st.integers(1, 4))


@settings(max_examples=300, deadline=None)
@given(case=attention_cases(keep_one=False), masked_rows=st.sampled_from(CONVENTIONS), block=blocks,
       workers=st.sampled_from([1, 2]), diagonal=st.sampled_from([0, 1, 2, 64]))
def test_blocked_agrees_with_dense(case, masked_rows, block, workers, diagonal) -> None:
    """Every mask kind (bool, float with -inf, with batch dims), both causal alignments, explicit
    scales, broadcast batch dims, fully masked rows under each convention; blocks of 1 to 4, causal
    diagonals in blocks of their own or not."""
    with mock.patch.object(blocked, "DIAGONAL_KEYS", diagonal):
        got = _blocked(case, masked_rows, block, workers)
    batch = np.broadcast_shapes(case.query.shape[:-2], case.key.shape[:-2], case.value.shape[:-2])
    assert got.shape == batch + (case.query.shape[-2], case.value.shape[-1])
    assert got.dtype == np.float64
    found = _against_dense(case, masked_rows, got)
    assert found is None, found


@settings(max_examples=60, deadline=None)
@given(case=attention_cases(keep_one=False), masked_rows=st.sampled_from(CONVENTIONS), block=blocks)
def test_blocked_within_bound_of_oracle(case, masked_rows, block) -> None:
    """Clause attention.accuracy for the blocked form itself, against the mpmath oracle."""
    exact = oracle_sdpa(case.query, case.key, case.value, **case.kwargs(), masked_rows=masked_rows)
    found = mismatch(_blocked(case, masked_rows, block), exact, _bound(case, masked_rows) + TINY)
    assert found is None, found


@settings(max_examples=40, deadline=None)
@given(case=attention_cases(mask_kinds=("bool", "float")), block=blocks)
def test_many_small_entries_in_one_item(case, block) -> None:
    """Small batch entries are grouped into one item; their masks and causal rows stay their own."""
    arrays = (case.query, case.key, case.value)
    batch = (7,) + np.broadcast_shapes(*(a.shape[:-2] for a in arrays))
    case.query, case.key, case.value = (np.broadcast_to(a, batch + a.shape[-2:]) for a in arrays)
    found = _against_dense(case, "uniform", _blocked(case, "uniform", (block[0] * 8, block[1] * 8), workers=2))
    assert found is None, found


@pytest.mark.parametrize("offset", [0, 3, -2])
@pytest.mark.parametrize("block_keys", [1, 3, 100])
@pytest.mark.parametrize("diagonal", [0, 1, 2, 64])
def test_causal_key_blocks_cover_each_kept_pair_once(offset, block_keys, diagonal) -> None:
    """Key blocks above the diagonal are skipped: each kept (i, j) is formed exactly once, and the
    scores formed but masked lie on the diagonal: at most ``w (w - 1) / 2`` per block of ``w`` keys
    taken from its first row on (``diagonal > 0``), ``R (R - 1) / 2`` per block of ``R`` rows otherwise."""
    L, S, R = 11, 12, 4
    formed = np.zeros((L, S), dtype=int)
    wasted = 0
    for i0 in range(0, L, R):
        for j0, j1, r in blocked.key_blocks(i0, min(i0 + R, L), S, offset, block_keys, diagonal):
            formed[i0 + r:i0 + R, j0:j1] += 1
            wasted += (j1 - j0) * (j1 - j0 - 1) // 2 if r else 0
        wasted += 0 if diagonal else R * (R - 1) // 2
    kept = np.arange(S)[None, :] <= np.arange(L)[:, None] + offset
    assert np.all(formed[kept] == 1)
    assert formed[~kept].sum() <= wasted


def test_results_do_not_depend_on_the_thread_count() -> None:
    rng = np.random.default_rng(1)
    query, key, value = rng.standard_normal((3, 70, 8)), rng.standard_normal((3, 90, 8)), rng.standard_normal((3, 90, 5))
    mask = rng.random((70, 90)) < 0.8
    for options in ({"is_causal": True}, {"is_causal": True, "causal_alignment": "bottom-right", "attn_mask": mask},
                    {"attn_mask": np.where(mask, rng.standard_normal((70, 90)), -np.inf)}):
        one = blocked_attention(query, key, value, **options, block_size=(16, 32), workers=1)
        two = blocked_attention(query, key, value, **options, block_size=(16, 32), workers=2)
        assert one.tobytes() == two.tobytes()


def _rising_scores() -> Case:
    """Keys whose scores rise along the row, so that the running max changes at every key block."""
    rng = np.random.default_rng(0)
    key = np.linspace(0.0, 8.0, 9)[:, None] * np.ones((1, 3))  # (9, 3)
    return Case(np.abs(rng.standard_normal((4, 3))), key, rng.standard_normal((9, 2)))


@pytest.mark.parametrize("wrong", [
    lambda m, m_new: np.ones_like(m),  # the rescaling forgotten
    lambda m, m_new: np.exp(m_new - m),  # the rescaling inverted
])
def test_a_wrong_rescaling_is_caught(monkeypatch: pytest.MonkeyPatch, wrong) -> None:
    case = _rising_scores()
    assert _against_dense(case, "zeros", _blocked(case)) is None
    monkeypatch.setattr(blocked, "_rescaling", lambda m, m_new: np.where(np.isneginf(m), 0.0, wrong(m, m_new)))
    assert _against_dense(case, "zeros", _blocked(case)) is not None


def test_a_missing_diagonal_mask_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    case = _rising_scores()
    case.key, case.value, case.is_causal = case.key[:4], case.value[:4], True
    assert _against_dense(case, "zeros", _blocked(case, block_size=(4, 4))) is None
    monkeypatch.setattr(blocked, "drop_causal", lambda x, k: x)  # the blocked form skips the causal stage
    assert _against_dense(case, "zeros", _blocked(case, block_size=(4, 4))) is not None


def test_auto_takes_the_dense_form_for_small_inputs_and_the_blocked_one_for_large() -> None:
    rng = np.random.default_rng(2)
    small = [rng.standard_normal((4, 8)) for _ in range(3)]
    assert np.array_equal(scaled_dot_product_attention(*small), scaled_dot_product_attention(*small, method="dense"))
    large = [rng.standard_normal((2, 512, 4)), rng.standard_normal((2, 512, 4)), rng.standard_normal((2, 512, 4))]
    auto = scaled_dot_product_attention(*large)
    assert np.array_equal(auto, scaled_dot_product_attention(*large, method="blocked"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "sparse"}, "method: expected one of 'auto', 'dense', 'blocked'"),
    ({"method": "blocked", "block_size": (0, 4)}, r"block_size\[0\]: expected an integer >= 1"),
    ({"method": "blocked", "block_size": 4}, "block_size: expected a pair"),
    ({"method": "dense", "block_size": (4, 4)}, "only the blocked method takes a block size"),
])
def test_bad_options_are_named(kwargs, message) -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(*(rng.standard_normal((2, 3)) for _ in range(3)), **kwargs)


@pytest.mark.parametrize(("arrays", "kwargs", "error"), [
    (((2, 3), (2, 4), (2, 1)), {}, ValueError),
    (((2, 3), (2, 3), (2, 1)), {"attn_mask": np.ones((3, 2))}, ValueError),
    (((2, 3), (2, 3), (2, 1)), {"attn_mask": np.ones((2, 2), dtype=int)}, TypeError),
    (((2, 3), (2, 3), (2, 1)), {"attn_mask": np.full((2, 2), np.nan)}, ValueError),
    (((2, 0), (2, 0), (2, 1)), {}, ValueError),
    (((2, 3), (2, 3), (2, 1)), {"scale": np.inf}, ValueError),
    (((2, 3), (2, 3), (2, 1)), {"is_causal": 1}, TypeError),
    (((2, 3), (2, 3), (2, 1)), {"is_causal": True, "causal_alignment": "center"}, ValueError),
    (((2, 3), (2, 3), (2, 1)), {"masked_rows": "skip", "scale": np.nan}, ValueError),
])
def test_errors_are_those_of_the_dense_form(arrays, kwargs, error) -> None:
    arrays = [np.zeros(shape) for shape in arrays]
    with pytest.raises(error) as dense:
        scaled_dot_product_attention(*arrays, **kwargs, method="dense")
    with pytest.raises(error) as got:
        scaled_dot_product_attention(*arrays, **kwargs, method="blocked")
    assert str(got.value) == str(dense.value)


@pytest.mark.parametrize("masked_rows", CONVENTIONS)
def test_empty_shapes(masked_rows: str) -> None:
    for shapes, scale in ((((3, 2), (0, 2), (0, 4)), None), (((0, 2), (5, 2), (5, 4)), None),
                          (((3, 0), (5, 0), (5, 4)), 1.0), (((0, 3, 2), (3, 2), (3, 4)), None)):
        arrays = [np.ones(shape) for shape in shapes]
        dense = scaled_dot_product_attention(*arrays, scale=scale, masked_rows=masked_rows, method="dense")
        got = scaled_dot_product_attention(*arrays, scale=scale, masked_rows=masked_rows, method="blocked")
        np.testing.assert_array_equal(got, dense)


@pytest.mark.parametrize("is_causal", [False, True])
def test_memory_grows_with_l_times_e_not_l_times_s(is_causal) -> None:
    rng = np.random.default_rng(4)
    peaks = {}
    for length in (2048, 8192):
        query, key, value = (rng.standard_normal((length, 16)) for _ in range(3))
        peaks[length] = peak_memory(lambda: scaled_dot_product_attention(query, key, value, is_causal=is_causal,
                                                                         method="blocked"))
    # Four times the length: L * E grows 4 times, L * S would grow 16 times (8192^2 scores are 512 MiB).
    assert peaks[8192] < 6 * peaks[2048], peaks
    assert peaks[8192] < 16 * 2**20, peaks
