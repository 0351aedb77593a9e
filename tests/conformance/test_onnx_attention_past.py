"""ONNX ``Attention`` with ``past_key``/``past_value`` (the ``-past`` targets): the cache, its causal offset, the split.

The measured facts of :mod:`kqv.conformance.backends.onnx_attention_past`, each against kqv's reference in both
alignments and in both runtimes: ``present_key``/``present_value`` are the concatenation of the cache and the current
keys/values; the causal rule and the window are offset by the cache length ``P`` (bottom-right exactly when the
current block has ``L`` keys); an empty cache is top-left, which is why ``L > S`` goes through ``nonpad_kv_seqlen``.
Then the clauses the mapping is for at the quick profile, and wrong splits that fail them.
"""

from __future__ import annotations

import numpy as np
import pytest

from kqv.conformance import Backend, check
from kqv.conformance.backends import builtin
from kqv.reference import scaled_dot_product_attention as reference

pytest.importorskip("onnx")

from kqv.conformance.backends import onnx_attention, onnx_attention_past  # noqa: E402

RUNTIMES = ["onnxruntime", "reference"]
ALIGNMENTS = ("top-left", "bottom-right")
CLAUSES = ["mask.causal.bottom-right", "mask.fully-masked-row", "cache.decode", "window.index-rule", "lengths.offset",
           "lengths.full"]


@pytest.fixture(params=RUNTIMES)
def runtime(request) -> str:
    if request.param == "onnxruntime":
        pytest.importorskip("onnxruntime")
    return request.param


def _inputs(L: int, S: int, B: int = 2, Hq: int = 4, Hkv: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((B, Hq, L, 4)).astype(np.float32)  # (B, Hq, L, E)
    key = rng.standard_normal((B, Hkv, S, 4)).astype(np.float32)  # (B, Hkv, S, E)
    value = rng.standard_normal((B, Hkv, S, 3)).astype(np.float32)  # (B, Hkv, S, Ev)
    return query, key, value


def _cached(runtime: str, query, key, value, P: int, **attributes):
    """The operator with the first ``P`` keys and values as its cache: ``(Y, present_key, present_value)``."""
    feeds = dict(Q=query, K=key[:, :, P:], V=value[:, :, P:], past_key=key[:, :, :P], past_value=value[:, :, :P])
    feeds = {name: np.ascontiguousarray(array) for name, array in feeds.items()}
    return onnx_attention.run(runtime, feeds, None, outputs=onnx_attention.OUTPUTS, **attributes)


def _close(got, expected) -> bool:
    return bool(np.allclose(got, expected, rtol=1e-5, atol=1e-6))


def _kept(L: int, S: int, offset: int) -> np.ndarray:
    """The rule ``j <= i + offset`` as a bool mask ``(L, S)``."""
    return np.arange(S)[None, :] <= np.arange(L)[:, None] + offset


@pytest.mark.parametrize("P", [0, 2, 5])
def test_present_key_and_value_are_the_cache_and_the_current_ones_concatenated(runtime: str, P: int) -> None:
    query, key, value = _inputs(L=3, S=P + 3)
    _, present_key, present_value = _cached(runtime, query, key, value, P, is_causal=True, scale=None)
    assert present_key.shape == key.shape and np.array_equal(present_key, key)  # (B, Hkv, P + S_k, E)
    assert present_value.shape == value.shape and np.array_equal(present_value, value)  # (B, Hkv, P + S_k, Ev)


@pytest.mark.parametrize("S_k", [1, 3, 5])
def test_the_causal_offset_is_the_length_of_the_cache(runtime: str, S_k: int) -> None:
    # L = 3 queries, S = 6 keys of which P = 6 - S_k are cached: j <= i + P, bottom-right only when S_k = L.
    query, key, value = _inputs(L=3, S=6)
    P = 6 - S_k
    y, *_ = _cached(runtime, query, key, value, P, is_causal=True, scale=None)
    assert _close(y, reference(query, key, value, attn_mask=_kept(3, 6, P), enable_gqa=True))
    by = {a: reference(query, key, value, is_causal=True, causal_alignment=a, enable_gqa=True) for a in ALIGNMENTS}
    assert _close(y, by["bottom-right"]) == (S_k == 3)
    assert not _close(y, by["top-left"])


@pytest.mark.parametrize("window", [(1, 0), (0, None), (2, 1)])
def test_the_window_is_offset_by_the_length_of_the_cache(runtime: str, window) -> None:
    query, key, value = _inputs(L=3, S=7)
    y, *_ = _cached(runtime, query, key, value, 4, scale=None, is_causal=False, window=window)
    by = {a: reference(query, key, value, window=window, causal_alignment=a, enable_gqa=True) for a in ALIGNMENTS}
    assert _close(y, by["bottom-right"]) and not _close(y, by["top-left"])


def test_an_empty_cache_is_top_left_so_longer_query_blocks_take_the_key_lengths(runtime: str) -> None:
    query, key, value = _inputs(L=5, S=3)
    by = {a: reference(query, key, value, is_causal=True, causal_alignment=a, enable_gqa=True) for a in ALIGNMENTS}
    empty, *_ = _cached(runtime, query, key, value, 0, is_causal=True, scale=None)
    assert _close(empty, by["top-left"]) and not _close(empty, by["bottom-right"])
    got = onnx_attention_past.attention(runtime)(query, key, value, is_causal=True)
    assert _close(got, by["bottom-right"])
    assert np.all(got[..., :2, :] == 0)  # rows i < L - S keep no key: zeros


@pytest.mark.parametrize(("L", "S"), [(1, 6), (3, 6), (4, 4)])
@pytest.mark.parametrize("options", [dict(is_causal=True), dict(window=(2, 0)), dict(is_causal=True, mask=True),
                                     dict(is_causal=True, kv_lengths=[4, 2])],
                         ids=["causal", "window", "causal-with-mask", "causal-with-lengths"])
def test_the_adapter_is_the_bottom_right_reference(runtime: str, L: int, S: int, options: dict) -> None:
    query, key, value = _inputs(L, S)
    options = dict(options)
    if options.pop("mask", False):
        options["attn_mask"] = np.random.default_rng(1).random((2, 4, L, S)) < 0.7  # (B, Hq, L, S)
    if "kv_lengths" in options:
        options["kv_lengths"] = np.array(options["kv_lengths"])
    got = onnx_attention_past.attention(runtime)(query, key, value, **options)
    by = {a: reference(query, key, value, causal_alignment=a, enable_gqa=True, **options) for a in ALIGNMENTS}
    assert _close(got, by["bottom-right"])


@pytest.mark.parametrize("seed", [0, 1])
def test_the_quick_profile_passes_the_clauses_of_the_mapping(runtime: str, seed: int) -> None:
    [target] = check(onnx_attention_past.NAMES[runtime], "sdpa", profile="quick", seed=seed, clauses=CLAUSES,
                     dtypes=("float32", "float16")).targets
    assert {c.clause: c.status for c in target.clauses} == dict.fromkeys(CLAUSES, "passed")
    [(_, backend)] = builtin(onnx_attention_past.NAMES[runtime]).items()
    assert {f.dtypes for f in backend.declaration.expected_failures} == {("float64",)}  # the 32-bit attributes only


def _one_key_short(feeds):
    """A wrong split: a cache of ``S - L - 1`` keys and ``L + 1`` current ones, so the offset is ``S - L - 1``."""
    L, S = feeds["Q"].shape[2], feeds["K"].shape[2]
    P = max(S - L - 1, 0)
    cached = dict(feeds, past_key=feeds["K"][:, :, :P], K=feeds["K"][:, :, P:],  # (B, Hkv, P, E), (B, Hkv, S - P, E)
                  past_value=feeds["V"][:, :, :P], V=feeds["V"][:, :, P:])  # (B, Hkv, P, Ev), (B, Hkv, S - P, Ev)
    return {name: np.ascontiguousarray(array) for name, array in cached.items()}


def _no_cache(feeds):
    """A wrong split: every key current, an empty cache (offset 0, top-left)."""
    return dict(feeds, past_key=feeds["K"][:, :, :0], past_value=feeds["V"][:, :, :0])


@pytest.mark.parametrize(("split", "named"), [(_one_key_short, "causal one key short"),
                                              (_no_cache, "causal aligned the other way")],
                         ids=["one-key-short", "no-cache"])
@pytest.mark.parametrize("clause", ["mask.causal.bottom-right", "cache.decode"])
def test_a_wrong_split_fails_and_the_departure_is_named(runtime: str, split, named: str, clause: str) -> None:
    correct = builtin(onnx_attention_past.NAMES[runtime])["sdpa"]
    broken = Backend(f"{correct.name}-{split.__name__}", onnx_attention_past.attention(runtime, split=split),
                     correct.declaration, correct.adapter)
    [target] = check(broken, profile="quick", seed=0, clauses=[clause], dtypes=("float32",), isolation=False).targets
    [result] = target.clauses
    assert result.clause == clause and result.status == "failed", result
    assert named in result.message, result.message


def test_a_report_names_the_onnx_version_although_only_its_workers_import_onnx() -> None:
    import subprocess
    import sys
    from importlib import metadata

    script = ("import sys; from kqv.conformance.api import versions; from kqv.conformance.backends import builtin; "
              "backend = builtin('onnx-reference-attention-past')['sdpa']; assert 'onnx' not in sys.modules; "
              "print(versions([backend]).get('onnx'), versions().get('onnx'))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [metadata.version("onnx"), "None"]
