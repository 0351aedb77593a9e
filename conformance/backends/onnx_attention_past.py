"""ONNX's ``Attention`` with its KV cache, ``past_key`` and ``past_value``, as an ``sdpa`` backend judged bottom-right.

The operator (opset 23 and later) takes a cache, ``past_key`` ``(B, H_kv, P, E)`` and ``past_value``
``(B, H_kv, P, Ev)``, concatenates it with the current keys and values along the sequence axis,
``present_key = concat(past_key, K)`` and ``present_value = concat(past_value, V)`` (its outputs 1 and 2, the cache
for the next call), and attends to those ``S = P + S_k`` keys. With a cache its ``is_causal`` is offset by the cache
length: query ``i`` keeps key ``j`` iff ``j <= i + P``, and the window ``(left, right)`` keeps
``i + P - left <= j <= i + P + right`` (ONNX's ``_apply_causal`` and ``_apply_sliding_window``, offset
``past_key.shape[2]``). That is the bottom-right rule, offset ``S - L``, exactly when the current block has as many
keys as queries, ``S_k = L``.

The adapter therefore splits a call with ``L`` queries and ``S >= L`` keys at ``P = S - L`` (the cache when the last
``L`` rows are decoded, as clause ``cache.decode`` feeds them)::

    past_key, past_value = K[..., :S - L, :], V[..., :S - L, :]   # (B, H_kv, S - L, E), (B, H_kv, S - L, Ev)
    K, V = K[..., S - L:, :], V[..., S - L:, :]                     # (B, H_kv, L, E), (B, H_kv, L, Ev)

(``L = S`` gives an empty cache, ``P = 0``, which both runtimes take), keeps the mask over all ``S`` keys (the
operator's ``attn_mask`` is ``(..., L, P + S_k)``) and declares ``causal_alignment="bottom-right"``. The layout, the
mask, the scale, ``softcap``, the window and the opsets are those of
:mod:`~kqv.conformance.backends.onnx_attention` (23; 25 with a window).

Two calls have no cache of non-negative length, and go through the operator's other cache form, ``nonpad_kv_seqlen``
(opset 24; ONNX refuses it together with ``past_key``), whose offset is ``n_b - L`` per batch entry (measured in
``tests/conformance/test_onnx_kv_lengths.py``), bottom-right too:

- ``L > S``: ``nonpad_kv_seqlen = S`` for every entry, offset ``S - L < 0``, not clamped, so rows ``i < L - S`` keep no
  key and give zeros (``masked_rows="zeros"``, clause ``mask.fully-masked-row``). An empty cache instead would give
  offset 0, the top-left rule: the cache form cannot express a block of queries longer than the cache;
- ``kv_lengths``: ``nonpad_kv_seqlen`` as it is (a static cache padded to ``S``; clauses ``lengths.*`` and the padded
  steps of ``cache.decode``).

Measured with onnx 1.23 and onnxruntime 1.32 on CPU, both runtimes, against kqv's reference: with a cache of ``P``
keys and ``S_k`` current keys the causal rule is ``j <= i + P`` (``L = 3``, ``S = 6``, ``S_k`` 1, 3 and 5; so with
``S_k != L`` it is neither top-left nor bottom-right), the window is offset by ``P`` with or without ``is_causal``,
a bool or float mask over all ``S`` keys is taken with and without ``is_causal``, a row whose every key is masked
gives zeros, ``softcap``, grouped-query heads and ``Ev != E`` work with a cache, at float64, float32 and float16
(onnxruntime has no bfloat16 kernel); ``present_key`` and ``present_value`` are the concatenation, bit for bit
(``tests/conformance/test_onnx_attention_past.py``). The known departures are those of the float64 attributes
(:func:`~kqv.conformance.backends.onnx_attention.departures`: ``sqrt(scale)`` and ``softcap`` rounded to float32);
under the bottom-right alignment declared here, the key-length clauses that depart for the top-left backends
(``lengths.offset``, ``lengths.full``) hold.
"""

from __future__ import annotations

import numpy as np

from ..backend import Backend
from ..declaration import Declaration
from .onnx_attention import OnnxAdapter, departures, feeds_of, lengths_of, packages, run

NAMES = {"onnxruntime": "onnxruntime-attention-cpu-past", "reference": "onnx-reference-attention-past"}


def split(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feeds`` with the first ``S - L`` keys and values as the cache (``past_key``, ``past_value``) and the last
    ``L`` as ``K`` and ``V``; ``L <= S``."""
    L, S = feeds["Q"].shape[2], feeds["K"].shape[2]
    P = S - L  # the cache's length, the causal offset with a cache
    cached = dict(feeds)
    cached["past_key"], cached["K"] = feeds["K"][:, :, :P], feeds["K"][:, :, P:]  # (B, H_kv, P, E), (B, H_kv, L, E)
    cached["past_value"], cached["V"] = feeds["V"][:, :, :P], feeds["V"][:, :, P:]  # (B, H_kv, P, Ev), (B, H_kv, L, Ev)
    return {name: np.ascontiguousarray(array) for name, array in cached.items()}


def attention(runtime: str, split=split):
    """The ``sdpa`` function that runs the operator with a cache on ``runtime``: the keys split by ``split`` (the
    tests pass a wrong one), or ``nonpad_kv_seqlen`` where a cache cannot be formed (module docstring)."""
    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
             softcap=None, window=None, kv_lengths=None):
        if dropout_p:
            raise ValueError("ONNX Attention has no dropout")
        leading, L, S = query.shape[:-2], query.shape[-2], key.shape[-2]
        feeds, mask = feeds_of(query, key, value, attn_mask)
        B = feeds["Q"].shape[0]
        if kv_lengths is not None:  # a static cache: no past_key beside nonpad_kv_seqlen
            feeds["nonpad_kv_seqlen"] = lengths_of(kv_lengths, query, B)  # (B,)
        elif L > S:  # no cache of length S - L < 0: the same offset through the key lengths
            feeds["nonpad_kv_seqlen"] = np.full((B,), S, dtype=np.int64)  # (B,)
        else:
            feeds = split(feeds)
        (out,) = run(runtime, feeds, mask, is_causal, scale, softcap, window)  # (B, H, L, Ev)
        return out.reshape(leading + (L, value.shape[-1]))
    sdpa.__name__ = f"attention_past_{runtime}"
    return sdpa


def backend(runtime: str) -> Backend:
    declaration = Declaration(kind="sdpa", dtypes=("float64", "float32", "float16"), masked_rows="zeros",
                              causal_alignment="bottom-right", gqa=True, softcap=True, window=True, kv_lengths=True,
                              expected_failures=departures(runtime, {}),
                              conventions=(("layout", "(B, H, L, E), mapped from (..., L, E)"),
                                           ("mask polarity", "True = attend"),
                                           ("cache", "keys 0..S-L-1 as past_key/past_value, the last L as K/V; "
                                                     "nonpad_kv_seqlen for L > S and kv_lengths")))
    where = "onnxruntime, CPU provider" if runtime == "onnxruntime" else "onnx.reference.ReferenceEvaluator"
    return Backend(NAMES[runtime], attention(runtime), declaration, OnnxAdapter(packages(runtime)),
                   description=f"ONNX Attention with past_key/past_value (opset 23; 24 with key lengths or L > S, 25 "
                               f"with a window) on {where}")
