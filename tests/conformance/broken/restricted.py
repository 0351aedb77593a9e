"""Correct implementations that reject, by design, a call they do not support (``NotImplementedError``).

Not broken: each conforms once its declaration says what it rejects (``declared``), and fails every
clause that makes such a call without it, with a hint naming that declaration. They stand for real
code: a causal-only decoder kernel (nanoGPT's ``CausalSelfAttention``), a kernel of self-attention
only (L = S), a multi-head layer that takes one input sequence, an encoding of even widths only.
"""

from __future__ import annotations

from kqv.conformance.backends.numpy_reference import mha as reference_mha
from kqv.conformance.backends.numpy_reference import pe as reference_pe
from kqv.conformance.backends.numpy_reference import sdpa as reference_sdpa


def restricted(**declared):
    """Mark a restricted implementation with the declaration under which it conforms."""
    def mark(fn):
        fn.declared = declared
        return fn
    return mark


@restricted(non_causal=False)
def causal_only(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **variants):
    """Causal attention only, as a decoder kernel: is_causal=False is rejected."""
    if not is_causal:
        raise NotImplementedError("only causal attention is implemented (is_causal=True)")
    return reference_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, **variants)


@restricted(cross_lengths=False)
def self_attention_only(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **variants):
    """Queries and keys of one sequence only: L != S is rejected."""
    if query.shape[-2] != key.shape[-2]:
        raise NotImplementedError(f"self-attention only: L = {query.shape[-2]}, S = {key.shape[-2]}")
    return reference_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, **variants)


@restricted(cross_attention=False, non_causal=False)
def causal_self_attention(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads,
                          attn_mask=None, is_causal=False):
    """Multi-head causal self-attention of one sequence, as nanoGPT's ``CausalSelfAttention``: keys and values
    from another sequence than the queries, or a call without is_causal, are rejected."""
    if x_kv is not x_q:
        raise NotImplementedError("self-attention only: x_kv must be x_q")
    if not is_causal:
        raise NotImplementedError("causal self-attention only")
    return reference_mha(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, num_heads=num_heads,
                         attn_mask=attn_mask, is_causal=is_causal)


@restricted(odd_d_model=False)
def even_widths_only(length, d_model):
    """The sinusoidal encoding for even widths only, as encoders that pair every sine with its cosine."""
    if d_model % 2:
        raise NotImplementedError(f"d_model must be even, got {d_model}")
    return reference_pe(length, d_model)
