"""Broken backward passes, one classic bug each, shipped the way a kernel author ships one: a
``torch.autograd.Function`` whose forward is right and whose hand-written backward is not.

Each is checked with torch tensors (``arrays="torch"``) and declares ``backward=True``; ``breaks`` names the
gradient clause its bug breaks. The forward and the correct backward compute in float64 and round to the inputs'
dtype; ``Bugs`` switches on one mistake of the backward at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._base import breaks


@dataclass(frozen=True)
class Bugs:
    """The one mistake of a backward pass (all off: the correct backward)."""

    naive_softmax: bool = False  # P recomputed by torch.softmax: a row with no key gives NaN
    no_row_sum: bool = False  # dA = P * dP, the softmax Jacobian's - p p^T term dropped
    unscaled: str = ""  # "query" or "key": the scale s missing from dQ or from dK
    causal_leak: bool = False  # P recomputed without the causal mask
    untransposed_value: bool = False  # dV = P dO instead of P^T dO
    first_head_only: bool = False  # GQA: dK, dV of each key/value head from the first query head of its group
    compute: torch.dtype = torch.float64  # the precision of the backward


def _keep(attn_mask, is_causal, L, S, device):
    """Bool ``(..., L, S)`` broadcastable: the keys each query keeps (True = takes part), and the float bias."""
    keep = torch.ones(L, S, dtype=torch.bool, device=device)
    bias = torch.zeros(L, S, dtype=torch.float64, device=device)
    if is_causal:
        keep = keep & torch.ones(L, S, dtype=torch.bool, device=device).tril()
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            keep = keep & attn_mask
        else:
            keep = keep & (attn_mask != -math.inf)
            bias = torch.where(attn_mask == -math.inf, 0.0, attn_mask.to(torch.float64))
    return keep, bias


def _softmax(x, keep):
    """``softmax`` over the kept keys of each row; a row that keeps none gets weights 0 (its output is 0)."""
    x = torch.where(keep, x, -math.inf)
    top = torch.amax(x, dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, 0.0)
    weights = torch.exp(x - top)
    total = weights.sum(dim=-1, keepdim=True)
    return weights / torch.where(total > 0, total, 1.0)


def _weights(q, k, scale, attn_mask, is_causal, bugs=Bugs(), backward=False):
    """``P = softmax(s Q K^T + M)`` in ``q``'s dtype, with the bugs of the recomputation when ``backward``."""
    L, S = q.shape[-2], k.shape[-2]
    keep, bias = _keep(attn_mask, is_causal and not (backward and bugs.causal_leak), L, S, q.device)
    x = scale * (q @ k.transpose(-1, -2)) + bias.to(q.dtype)  # (..., L, S)
    if backward and bugs.naive_softmax:
        return torch.softmax(torch.where(keep, x, -math.inf), dim=-1)  # NaN on a row that keeps no key
    return _softmax(x, keep)


def _repeat(array, heads):
    return array.repeat_interleave(heads // array.shape[-3], dim=-3)  # (..., H_kv, S, .) -> (..., H_q, S, .)


class Attention(torch.autograd.Function):
    """Attention with a hand-written backward: ``dV = P^T dO``, ``dP = dO V^T``, ``dA = P * (dP - rowsum(dP * P))``,
    ``dQ = s dA K``, ``dK = s dA^T Q``, each summed back over broadcast dims and GQA groups, unless a bug says
    otherwise."""

    @staticmethod
    def forward(ctx, query, key, value, attn_mask, is_causal, scale, enable_gqa, bugs):
        s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
        q, k, v = (a.to(torch.float64) for a in (query, key, value))
        if enable_gqa:
            k, v = _repeat(k, q.shape[-3]), _repeat(v, q.shape[-3])
        output = _weights(q, k, s, attn_mask, is_causal) @ v  # (..., L, Ev)
        ctx.save_for_backward(query, key, value, attn_mask)
        ctx.options = (is_causal, s, enable_gqa, bugs)
        return output.to(query.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        query, key, value, attn_mask = ctx.saved_tensors
        is_causal, s, enable_gqa, bugs = ctx.options
        q, k, v, dO = (a.to(bugs.compute) for a in (query, key, value, grad_output))
        if enable_gqa:
            k, v = _repeat(k, q.shape[-3]), _repeat(v, q.shape[-3])
        P = _weights(q, k, s, attn_mask, is_causal, bugs, backward=True)  # (..., L, S)
        dV = P @ dO if bugs.untransposed_value else P.transpose(-1, -2) @ dO  # (..., S, Ev)
        dP = dO @ v.transpose(-1, -2)  # (..., L, S)
        dA = P * dP if bugs.no_row_sum else P * (dP - (dP * P).sum(dim=-1, keepdim=True))
        dQ = (1.0 if bugs.unscaled == "query" else s) * (dA @ k)  # (..., L, E)
        dK = (1.0 if bugs.unscaled == "key" else s) * (dA.transpose(-1, -2) @ q)  # (..., S, E)
        if enable_gqa:
            group = query.shape[-3] // key.shape[-3]
            if bugs.first_head_only:
                dK, dV = dK[..., ::group, :, :], dV[..., ::group, :, :]  # (..., H_kv, S, .): one head of each group
            else:
                dK = dK.unflatten(-3, (key.shape[-3], group)).sum(-3)  # (..., H_kv, G, S, E) -> (..., H_kv, S, E)
                dV = dV.unflatten(-3, (value.shape[-3], group)).sum(-3)  # (..., H_kv, S, Ev)
        grads = (dQ.sum_to_size(query.shape), dK.sum_to_size(key.shape), dV.sum_to_size(value.shape))
        return tuple(g.to(a.dtype) for g, a in zip(grads, (query, key, value))) + (None,) * 5  # no mask, flags


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
              bugs=Bugs()):
    return Attention.apply(query, key, value, attn_mask, is_causal, scale, enable_gqa, bugs)


@breaks("gradient.masked-row", backward=True, masked_rows="zeros")
def nan_from_masked_row(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Recomputes P with torch.softmax: a row whose every key is masked gives NaN, which reaches dQ, dK and dV."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, bugs=Bugs(naive_softmax=True))


@breaks("gradient.group-sum", backward=True, gqa=True)
def group_not_summed(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """With enable_gqa, gives each key/value head the gradient of the first query head of its group, not the sum."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa,
                     bugs=Bugs(first_head_only=True))


@breaks("gradient.scores", backward=True)
def jacobian_without_outer_product(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Drops the - p p^T term of the softmax Jacobian: dA = P * dP, without the row sum."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, bugs=Bugs(no_row_sum=True))


@breaks("gradient.query", backward=True)
def query_gradient_unscaled(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Forgets the scale in dQ: dQ = dA K."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, bugs=Bugs(unscaled="query"))


@breaks("gradient.key", backward=True)
def key_gradient_unscaled(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Forgets the scale in dK: dK = dA^T Q."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, bugs=Bugs(unscaled="key"))


@breaks("gradient.causal", backward=True)
def causal_mask_forgotten_in_backward(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Recomputes P in the backward without the causal mask: gradients leak to and from the keys it hides."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, bugs=Bugs(causal_leak=True))


@breaks("gradient.value", backward=True)
def value_gradient_untransposed(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Computes dV = P dO instead of P^T dO (the shapes agree only when L = S; otherwise it raises)."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, bugs=Bugs(untransposed_value=True))


@breaks("gradient.accuracy", backward=True, dtypes=("float64",))
def float64_backward_in_float32(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Takes float64 and computes its backward in float32 (the forward is float64)."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, bugs=Bugs(compute=torch.float32))
