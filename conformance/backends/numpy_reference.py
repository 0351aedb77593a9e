"""The NumPy reference as a backend of all three kinds.

The reference computes in float64 whatever its input; as a backend under test it owes the
output in the query's dtype (clause ``attention.dtype``), so these wrappers round the float64
result once to that dtype. ``pe`` returns float64. The sdpa and mha backends' backward callables are the reference's
analytic backwards, their gradients rounded alike.
"""

from __future__ import annotations

import numpy as np

from kqv.reference import (multi_head_attention, multi_head_attention_backward, scaled_dot_product_attention,
                           scaled_dot_product_attention_backward, sinusoidal_positional_encoding)

from ..backend import Backend
from ..declaration import Declaration
from ..dtypes import DTYPES, bfloat16_missing

DESCRIPTION = "kqv.reference (float64 NumPy), output rounded to the input dtype"


def _dtypes() -> tuple[str, ...]:
    return DTYPES if bfloat16_missing() is None else tuple(d for d in DTYPES if d != "bfloat16")


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
         window=None, softcap=None, alibi_slopes=None, kv_lengths=None, sinks=None, return_lse=False):
    """``softmax(Q K^T * scale + mask) V`` in float64, rounded to ``query.dtype`` (clause ``attention.sdpa``); with
    ``return_lse`` also the lse (clause ``lse.definition``) in float32 or, for float64 inputs, float64."""
    result = scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                                          is_causal=is_causal, scale=scale, enable_gqa=enable_gqa, window=window,
                                          softcap=softcap, alibi_slopes=alibi_slopes, kv_lengths=kv_lengths,
                                          sinks=sinks, return_lse=return_lse)
    if return_lse:
        out, lse = result
        return out.astype(query.dtype), lse.astype(np.float64 if query.dtype == np.float64 else np.float32)
    return result.astype(query.dtype)


def sdpa_backward(query, key, value, grad_output, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                  enable_gqa=False, window=None, softcap=None, alibi_slopes=None, kv_lengths=None, sinks=None):
    """``(dQ, dK, dV)`` of :func:`sdpa` given ``dO`` (clauses ``gradient.*``): the reference's analytic backward in
    float64 (:func:`kqv.reference.scaled_dot_product_attention_backward`), each rounded to its input's dtype."""
    gradients = scaled_dot_product_attention_backward(query, key, value, grad_output, attn_mask=attn_mask,
                                                      dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                                                      enable_gqa=enable_gqa, window=window, softcap=softcap,
                                                      alibi_slopes=alibi_slopes, kv_lengths=kv_lengths, sinks=sinks)
    return (gradients.query.astype(query.dtype), gradients.key.astype(key.dtype),
            gradients.value.astype(value.dtype))


def mha(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads, attn_mask=None,
        is_causal=False):
    """Multi-head attention in float64, rounded to ``x_q.dtype`` (clauses ``mha.*``)."""
    out = multi_head_attention(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, num_heads=num_heads,
                               attn_mask=attn_mask, is_causal=is_causal)
    return out.astype(x_q.dtype)


def mha_backward(x_q, x_kv, w_q, w_k, w_v, w_o, grad_output, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads,
                 attn_mask=None, is_causal=False):
    """The gradient of every array of :func:`mha` given ``dY`` (clauses ``mha.gradient.inputs``,
    ``mha.gradient.weights``): :func:`kqv.reference.multi_head_attention_backward` in float64, each rounded to its
    input's dtype; ``(dx_q, dx_kv, dw_q, dw_k, dw_v, dw_o)`` and then one for each bias given."""
    given = dict(x_q=x_q, x_kv=x_kv, w_q=w_q, w_k=w_k, w_v=w_v, w_o=w_o, b_q=b_q, b_k=b_k, b_v=b_v, b_o=b_o)
    gradients = multi_head_attention_backward(**given, grad_output=grad_output, num_heads=num_heads,
                                              attn_mask=attn_mask, is_causal=is_causal)
    return tuple(getattr(gradients, name).astype(array.dtype) for name, array in given.items() if array is not None)


def pe(length, d_model):
    """The sinusoidal positional encoding in float64 (clause ``pe.sinusoid``)."""
    return np.asarray(sinusoidal_positional_encoding(length, d_model))


def backends() -> dict[str, Backend]:
    common = dict(masked_rows="zeros", causal_alignment="top-left")
    return {
        "sdpa": Backend("numpy", sdpa, Declaration(kind="sdpa", dtypes=_dtypes(), gqa=True, window=True, softcap=True,
                                                     alibi=True, kv_lengths=True, sinks=True, lse=True, backward=True,
                                                     **common),
                        description=DESCRIPTION, backward=sdpa_backward),
        "mha": Backend("numpy", mha, Declaration(kind="mha", dtypes=_dtypes(), backward=True, **common),
                       description=DESCRIPTION, backward=mha_backward),
        "pe": Backend("numpy", pe, Declaration(kind="pe", dtypes=("float64",)), description=DESCRIPTION),
    }
