"""Key lengths on ONNX's ``Attention``: ``kv_lengths`` reaches the operator as ``nonpad_kv_seqlen`` (opset 24), and
the declared departure is what both runtimes compute.

ONNX aligns ``is_causal`` and the window to each entry's valid keys (offset ``n_b - L``, bottom-right) when
``nonpad_kv_seqlen`` is given, and top-left without it, the alignment the backends declare: clauses
``lengths.offset`` and ``lengths.full`` are declared departures. Each test here calls ONNX directly through the
adapter and compares it with kqv's reference in both alignments, so the claim is measured, not copied from the
declaration. ``kqv check onnxruntime-attention-cpu --clause lengths.offset`` reproduces the departure.
"""

from __future__ import annotations

import numpy as np
import pytest

from kqv.conformance import replay
from kqv.reference import scaled_dot_product_attention as reference

pytest.importorskip("onnx")

RUNTIMES = ["onnxruntime", "reference"]
TARGETS = {"onnxruntime": "onnxruntime-attention-cpu", "reference": "onnx-reference-attention"}
ALIGNMENTS = ("top-left", "bottom-right")


def _attention(runtime: str):
    if runtime == "onnxruntime":
        pytest.importorskip("onnxruntime")
    from kqv.conformance.backends.onnx_attention import attention

    return attention(runtime)


def _inputs(B: int, Hq: int, Hkv: int, L: int, S: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((B, Hq, L, 4)).astype(np.float32)  # (B, Hq, L, E)
    key = rng.standard_normal((B, Hkv, S, 4)).astype(np.float32)  # (B, Hkv, S, E)
    value = rng.standard_normal((B, Hkv, S, 3)).astype(np.float32)  # (B, Hkv, S, Ev)
    return query, key, value


def _close(got: np.ndarray, expected: np.ndarray) -> bool:
    return bool(np.allclose(got, expected, rtol=1e-5, atol=1e-6))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_kv_lengths_reach_onnx(runtime: str) -> None:
    # Grouped-query heads, a bool mask and an entry of length 0: padding keys 10 times larger and values of 1e30
    # give the reference's output, and the empty entry zeros (the backends' fully-masked-row convention).
    query, key, value = _inputs(B=3, Hq=4, Hkv=2, L=3, S=6)
    lengths = np.array([6, 4, 0])
    padding = np.arange(6)[None, :] >= lengths[:, None]  # (B, S)
    key = np.where(padding[:, None, :, None], 10 * key, key).astype(np.float32)
    value = np.where(padding[:, None, :, None], np.float32(1e30), value).astype(np.float32)
    keep = np.random.default_rng(1).random((3, 4, 3, 6)) < 0.8
    keep[..., 0] = True  # every row keeps key 0
    got = _attention(runtime)(query, key, value, attn_mask=keep, kv_lengths=lengths)
    expected = reference(query, key, value, attn_mask=keep, kv_lengths=lengths, enable_gqa=True)
    assert np.isfinite(got).all()
    assert _close(got, expected), np.abs(got - expected).max()
    assert np.all(got[2] == 0)
    assert not _close(got, reference(query, key, value, attn_mask=keep, enable_gqa=True))


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("rule", [dict(is_causal=True), dict(window=(1, 0)), dict(window=(1, None), is_causal=True)])
def test_onnx_aligns_key_lengths_bottom_right_and_is_causal_alone_top_left(runtime: str, rule: dict) -> None:
    # The departure declared on lengths.offset and lengths.full: L = 3 queries, S = 6 keys, lengths 5 and 2 (an
    # entry with L > n_b, whose first row keeps no key bottom-right). With the lengths ONNX agrees with the
    # reference bottom-right (offset n_b - L) and not top-left (offset 0); without them, top-left (offset 0, not
    # S - L). Lengths of S therefore move the call: lengths.full.
    attention = _attention(runtime)
    query, key, value = _inputs(B=2, Hq=2, Hkv=2, L=3, S=6)
    lengths = np.array([5, 2])
    with_lengths = attention(query, key, value, kv_lengths=lengths, **rule)
    by = {a: reference(query, key, value, kv_lengths=lengths, causal_alignment=a, **rule) for a in ALIGNMENTS}
    assert _close(with_lengths, by["bottom-right"]) and not _close(with_lengths, by["top-left"])
    without = attention(query, key, value, **rule)
    alone = {a: reference(query, key, value, causal_alignment=a, **rule) for a in ALIGNMENTS}
    assert _close(without, alone["top-left"]) and not _close(without, alone["bottom-right"])
    full = attention(query, key, value, kv_lengths=np.array([6, 6]), **rule)
    assert _close(full, alone["bottom-right"]) and not _close(full, without)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_without_causal_rule_or_window_key_lengths_agree_in_either_alignment(runtime: str) -> None:
    query, key, value = _inputs(B=2, Hq=2, Hkv=1, L=4, S=5)
    lengths = np.array([1, 5])
    got = _attention(runtime)(query, key, value, kv_lengths=lengths)
    for alignment in ALIGNMENTS:
        assert _close(got, reference(query, key, value, kv_lengths=lengths, enable_gqa=True,
                                     causal_alignment=alignment))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_departure_is_declared_on_the_offset_and_full_lengths_only(runtime: str) -> None:
    if runtime == "onnxruntime":
        pytest.importorskip("onnxruntime")
    from kqv.conformance.backends import builtin
    from kqv.conformance.backends.onnx_attention import opset

    [(_, backend)] = builtin(TARGETS[runtime]).items()
    declaration = backend.declaration
    assert declaration.kv_lengths and declaration.causal_alignment == "top-left"
    for dtype in ("float32", "float16"):  # at float64 the scale's float32 error is declared on every clause too
        departures = {f.clause for f in declaration.expected_failures if f.applies(f.clause, dtype)}
        assert departures == {"lengths.offset", "lengths.full"}, departures
    assert (opset(False, False), opset(True, False), opset(True, True), opset(False, True)) == (23, 24, 25, 25)
    # One causal entry with n_b = 1 key and L = 2 queries: ONNX leaves row 0 without a key (offset -1).
    case = ('{"E": 1, "Ev": 1, "L": 2, "S": 2, "alignment": "top-left", "batch": [1, 1], "dtype": "float32", '
            '"empty_rows": false, "is_causal": true, "kind": "sdpa", "mask": "none", "mask_pattern": "random", '
            '"mask_shape": "full", "scale": null, "seed": 0, "values": "normal", "variants": [["kv_lengths", [1]]]}')
    [result] = replay(TARGETS[runtime], clause="lengths.offset", case=case, isolation=False).targets[0].clauses
    assert result.status == "xfailed" and "n_b - L" in result.message, result.message
