"""The blocked, online-softmax form of the reference (clause ``softmax.online``) agrees with the
dense form to float64 rounding, with every mask kind, alignment and convention; its memory grows
with L * E, not L * S; and its result does not depend on the thread count."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import attention_cases

import kqv.reference.blocked as blocked
from kqv.conformance.cases import SdpaInputs
from kqv.conformance.compare import mismatch
from kqv.conformance.tolerance import Precision, sdpa_expectation
from kqv.reference import scaled_dot_product_attention
from kqv.reference.blocked import blocked_attention

CONVENTIONS = ("zeros", "nan", "uniform")


def _agree(case, masked_rows, got):
    """Both forms are within the float64 bound of the exact result, so within twice it of each other."""
    dense = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs(), masked_rows=masked_rows,
                                         method="dense")
    inputs = SdpaInputs(case.query, case.key, case.value, case.attn_mask, case.is_causal, case.scale)
    bound = sdpa_expectation(inputs, Precision.of("float64"), case.causal_alignment, masked_rows).bound
    return mismatch(got, dense, 2 * bound + np.finfo(np.float64).tiny)


@settings(max_examples=300, deadline=None)
@given(case=attention_cases(keep_one=False), masked_rows=st.sampled_from(CONVENTIONS),
       block=st.tuples(st.integers(1, 4), st.integers(1, 4)), workers=st.sampled_from([1, 2]))
def test_blocked_agrees_with_dense(case, masked_rows, block, workers) -> None:
    got = blocked_attention(case.query, case.key, case.value, case.attn_mask, case.is_causal, case.scale,
                            causal_alignment=case.causal_alignment, masked_rows=masked_rows, block_size=block,
                            workers=workers)
    assert got.shape == np.broadcast_shapes(case.query.shape[:-2], case.key.shape[:-2], case.value.shape[:-2]) \
        + (case.query.shape[-2], case.value.shape[-1])
    found = _agree(case, masked_rows, got)
    assert found is None, found


def test_a_forgotten_rescaling_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = np.exp

    def rows_without_rescaling(query, key, value, mask, rows, offset, block_keys):
        monkeypatch.setattr(blocked.np, "exp", lambda x, out=None: original(x, out=out) if out is not None
                            else np.ones_like(x))  # exp(m - m') forgotten: always 1
        try:
            return correct(query, key, value, mask, rows, offset, block_keys)
        finally:
            monkeypatch.setattr(blocked.np, "exp", original)

    correct = blocked._rows
    monkeypatch.setattr(blocked, "_rows", rows_without_rescaling)
    rng = np.random.default_rng(0)
    query, key, value = rng.standard_normal((4, 3)), rng.standard_normal((9, 3)) * 3, rng.standard_normal((9, 2))
    from reference_helpers import Case

    case = Case(query, key, value)
    got = blocked_attention(query, key, value, block_size=(2, 2), workers=1)
    assert _agree(case, "zeros", got) is not None


def test_results_do_not_depend_on_the_thread_count() -> None:
    rng = np.random.default_rng(1)
    query, key, value = rng.standard_normal((3, 70, 8)), rng.standard_normal((3, 90, 8)), rng.standard_normal((3, 90, 5))
    one = blocked_attention(query, key, value, is_causal=True, block_size=(16, 32), workers=1)
    two = blocked_attention(query, key, value, is_causal=True, block_size=(16, 32), workers=2)
    assert one.tobytes() == two.tobytes()


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


def test_errors_are_those_of_the_dense_form() -> None:
    with pytest.raises(ValueError, match="key: expected shape"):
        scaled_dot_product_attention(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 1)), method="blocked")
    with pytest.raises(TypeError, match="query: expected a floating dtype"):
        scaled_dot_product_attention(np.zeros((2, 3), dtype=int), np.zeros((2, 3)), np.zeros((2, 1)), method="blocked")


@pytest.mark.parametrize("masked_rows", CONVENTIONS)
def test_empty_shapes(masked_rows: str) -> None:
    for shapes, scale in ((((3, 2), (0, 2), (0, 4)), None), (((0, 2), (5, 2), (5, 4)), None),
                          (((3, 0), (5, 0), (5, 4)), 1.0)):
        arrays = [np.ones(shape) for shape in shapes]
        dense = scaled_dot_product_attention(*arrays, scale=scale, masked_rows=masked_rows, method="dense")
        got = scaled_dot_product_attention(*arrays, scale=scale, masked_rows=masked_rows, method="blocked")
        np.testing.assert_array_equal(got, dense)


def _peak(function) -> int:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_with_l_times_e_not_l_times_s() -> None:
    rng = np.random.default_rng(4)
    peaks = {}
    for length in (2048, 8192):
        query, key, value = (rng.standard_normal((length, 16)) for _ in range(3))
        peaks[length] = _peak(lambda: scaled_dot_product_attention(query, key, value, is_causal=True,
                                                                   method="blocked"))
    # Four times the length: L * E grows 4 times, L * S would grow 16 times (8192^2 scores are 512 MiB).
    assert peaks[8192] < 6 * peaks[2048], peaks
    assert peaks[8192] < 32 * 2**20, peaks
