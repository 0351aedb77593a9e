"""Key lengths in the reference's sdpa (clauses ``lengths.*``): the forms agree, a padded call is the call on the
valid keys alone (bottom-right at the offset n_b - L), lengths of S are no lengths, entries of length 0 follow the
fully-masked-row convention, and bad lengths are refused with a message naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kqv.conformance.compare import mismatch
from kqv.conformance.kinds.sdpa.bound import sdpa_expectation
from kqv.conformance.kinds.sdpa.case import SdpaInputs
from kqv.conformance.tolerance import Precision
from kqv.reference import scaled_dot_product_attention
from kqv.reference.oracle import oracle_sdpa

TINY = np.finfo(np.float64).tiny
ALIGNMENTS = ("top-left", "bottom-right")


@st.composite
def calls(draw):
    """query (B, H, L, E), key and value (B, H, S, .), lengths (B,) in 0..S, an alignment, is_causal, a window."""
    B, H, L, S, E = (draw(st.integers(low, high)) for low, high in ((1, 3), (1, 2), (1, 5), (1, 6), (1, 4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    query, key, value = (rng.standard_normal((B, H, n, E)) for n in (L, S, S))
    lengths = np.array(draw(st.lists(st.integers(0, S), min_size=B, max_size=B)))
    side = st.one_of(st.none(), st.integers(0, 4))
    window = draw(st.one_of(st.none(), st.tuples(side, side)))
    return query, key, value, lengths, dict(causal_alignment=draw(st.sampled_from(ALIGNMENTS)),
                                            is_causal=draw(st.booleans()), window=window)


@settings(max_examples=100, deadline=None)
@given(call=calls(), block=st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_dense_blocked_and_oracle_agree_with_key_lengths(call, block) -> None:
    query, key, value, lengths, kwargs = call
    dense = scaled_dot_product_attention(query, key, value, kv_lengths=lengths, **kwargs, method="dense")
    blocked = scaled_dot_product_attention(query, key, value, kv_lengths=lengths, **kwargs, method="blocked",
                                           block_size=block)
    exact = oracle_sdpa(query, key, value, kv_lengths=lengths, **kwargs, dps=40)
    inputs = SdpaInputs(query, key, value, None, kwargs["is_causal"], None,
                        variants=(("kv_lengths", tuple(lengths)),) + ((("window", kwargs["window"]),)
                                                                      if kwargs["window"] else ()))
    bound = sdpa_expectation(inputs, Precision.of("float64"), kwargs["causal_alignment"]).bound + TINY
    assert mismatch(blocked, dense, 2 * bound) is None
    assert mismatch(dense, exact, bound) is None


@settings(max_examples=100, deadline=None)
@given(call=calls())
def test_a_padded_call_is_the_call_on_the_valid_keys(call) -> None:
    query, key, value, lengths, kwargs = call
    padded = scaled_dot_product_attention(query, key, value, kv_lengths=lengths, **kwargs)
    for b, n in enumerate(lengths):  # entry b alone, its padding cut: bottom-right aligns to key n - 1
        alone = scaled_dot_product_attention(query[b], key[b, :, :n], value[b, :, :n], **kwargs)
        inputs = SdpaInputs(query[b], key[b, :, :n], value[b, :, :n], None, kwargs["is_causal"], None,
                            variants=(("window", kwargs["window"]),) if kwargs["window"] else ())
        bound = sdpa_expectation(inputs, Precision.of("float64"), kwargs["causal_alignment"]).bound + TINY
        assert mismatch(padded[b], alone, 2 * bound) is None  # the padding's zero weights only reorder the sums


@pytest.mark.parametrize("alignment", ALIGNMENTS)
@pytest.mark.parametrize("is_causal", [False, True])
def test_lengths_of_s_are_no_lengths(alignment: str, is_causal: bool) -> None:
    rng = np.random.default_rng(3)
    query, key, value = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 2, 5, 4)), \
        rng.standard_normal((2, 2, 5, 2))
    kwargs = dict(is_causal=is_causal, causal_alignment=alignment, window=(1, 1))
    np.testing.assert_array_equal(scaled_dot_product_attention(query, key, value, kv_lengths=np.array([5, 5]), **kwargs),
                                  scaled_dot_product_attention(query, key, value, **kwargs))


def test_the_causal_offset_of_an_entry_is_its_length_minus_l() -> None:
    """Bottom-right, L = 2, n_b = 3 of S = 5: query 0 keeps keys 0, 1 (offset 1), not 0..2 (offset S - L = 3)."""
    query, key = np.zeros((1, 1, 2, 1)), np.zeros((1, 1, 5, 1))
    value = np.eye(5)[None, None]  # (1, 1, 5, 5): the output is the weights
    weights = scaled_dot_product_attention(query, key, value, is_causal=True, causal_alignment="bottom-right",
                                           kv_lengths=np.array([3]))
    np.testing.assert_allclose(weights[0, 0], [[0.5, 0.5, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0, 0]], rtol=1e-15)


@pytest.mark.parametrize(("convention", "row"), [("zeros", [0.0, 0.0]), ("nan", [np.nan, np.nan]),
                                                 ("uniform", "mean")])
def test_an_entry_of_length_zero_follows_the_fully_masked_row_convention(convention: str, row) -> None:
    rng = np.random.default_rng(5)
    query, key, value = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((2, 1, 4, 4)), \
        rng.standard_normal((2, 1, 4, 2))
    out = scaled_dot_product_attention(query, key, value, kv_lengths=np.array([0, 4]), masked_rows=convention)
    expected = value[0, 0].mean(axis=0) if row == "mean" else np.array(row)
    np.testing.assert_allclose(out[0, 0], np.broadcast_to(expected, (3, 2)), rtol=1e-15)
    np.testing.assert_array_equal(out[1], scaled_dot_product_attention(query[1], key[1], value[1]))


@pytest.mark.parametrize(("lengths", "message"), [
    (np.array([1, 2]), r"kv_lengths: expected shape \(B,\) = \(3,\).*got shape \(2,\)"),
    (np.array([[1, 2, 3]]), r"kv_lengths: expected shape \(B,\) = \(3,\).*got shape \(1, 3\)"),
    (np.array([1.0, 2.0, 3.0]), "kv_lengths: expected integers .* got dtype float64"),
    (np.array([True, False, True]), "kv_lengths: expected integers .* got dtype bool"),
    (np.array([1, 5, 2]), r"kv_lengths: each length must lie in 0..S = 0..4, got \[1, 5, 2\]"),
    (np.array([-1, 0, 0]), r"kv_lengths: each length must lie in 0..S = 0..4, got \[-1, 0, 0\]"),
])
def test_bad_lengths_are_refused_naming_them(lengths, message: str) -> None:
    query, key = np.zeros((3, 2, 2, 3)), np.zeros((3, 2, 4, 3))
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(query, key, key, kv_lengths=lengths)


def test_lengths_need_the_batch_axis_before_the_heads() -> None:
    with pytest.raises(ValueError, match=r"kv_lengths: needs the batch axis before the head axis.* \(2,\)"):
        scaled_dot_product_attention(np.zeros((2, 2, 3)), np.zeros((2, 4, 3)), np.zeros((2, 4, 3)),
                                     kv_lengths=np.array([1, 2]))
