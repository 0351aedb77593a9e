"""Broken backward passes of multi-head attention, one bug each in the chain rule through the projections: a
``torch.autograd.Function`` whose forward is right and whose hand-written backward is not.

Each is checked with torch tensors (``arrays="torch"``) and declares ``backward=True`` and torch's widths
(``heads_split_model``: ``W_O`` is square, so a transposed ``dW_O`` has the right shape); ``breaks`` names the
clause its bug breaks. The forward and the backward compute in float64 and round to the inputs' dtype: the heads'
gradients come from autograd on the float64 attention of each head, the projections' by hand, where ``Bugs`` puts
one mistake at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._base import breaks
from .backward import _keep, _softmax

DECLARATION = dict(backward=True, masked_rows="zeros", heads_split_model=True, value_width=False)


@dataclass(frozen=True)
class Bugs:
    """The one mistake of the backward pass (all off: the correct backward)."""

    transposed_output_weight: bool = False  # dW_O = dY^T H instead of H^T dY
    key_path_only: bool = False  # dX_kv = dK W_K^T, the value path's dV W_V^T dropped
    bias_mean: bool = False  # db_Q the mean of dQ's rows instead of their sum


def _split(x, heads):
    B, n, width = x.shape
    return x.reshape(B, n, heads, width // heads).transpose(1, 2)  # (B, n, h*d) -> (B, h, n, d)


def _concat(x):
    B, h, n, d = x.shape
    return x.transpose(1, 2).reshape(B, n, h * d)  # (B, h, n, d) -> (B, n, h*d)


def _project(x, w, b):
    return x @ w if b is None else x @ w + b


def _heads(q, k, v, attn_mask, is_causal):
    """Each head's ``softmax(Q K^T / sqrt(d_k) + M) V``, ``(B, h, L, d_v)``; a row that keeps no key gives 0."""
    mask = None if attn_mask is None else attn_mask[:, None]  # (B or 1, 1, L, S): every head
    keep, bias = _keep(mask, is_causal, q.shape[-2], k.shape[-2], q.device)
    return _softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias, keep) @ v


class MultiHead(torch.autograd.Function):
    """Multi-head attention with the backward of clauses ``mha.gradient.*`` written out, unless a bug says
    otherwise: ``dW_O = H^T dY``, ``dH = dY W_O^T``, the heads' ``(dQ, dK, dV)``, ``dX_q = dQ W_Q^T``,
    ``dX_kv = dK W_K^T + dV W_V^T``, ``dW = X^T dQ`` (and so on) and the biases' row sums."""

    @staticmethod
    def forward(ctx, x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, attn_mask, num_heads, is_causal, bugs):
        arrays = [None if a is None else a.to(torch.float64) for a in (x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v,
                                                                          b_o)]
        xq, xkv, wq, wk, wv, wo, bq, bk, bv, bo = arrays
        heads = _heads(_split(_project(xq, wq, bq), num_heads), _split(_project(xkv, wk, bk), num_heads),
                       _split(_project(xkv, wv, bv), num_heads), attn_mask, is_causal)  # (B, h, L, d_v)
        ctx.save_for_backward(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, attn_mask)
        ctx.options = (num_heads, is_causal, bugs)
        return _project(_concat(heads), wo, bo).to(x_q.dtype)  # (B, L, d_model)

    @staticmethod
    def backward(ctx, grad_output):
        given = ctx.saved_tensors
        num_heads, is_causal, bugs = ctx.options
        xq, xkv, wq, wk, wv, wo, bq, bk, bv, bo = (None if a is None else a.to(torch.float64) for a in given[:10])
        dy = grad_output.to(torch.float64)  # (B, L, d_model)
        with torch.enable_grad():
            q, k, v = (_split(_project(x, w, b), num_heads).detach().requires_grad_(True)
                       for x, w, b in ((xq, wq, bq), (xkv, wk, bk), (xkv, wv, bv)))  # (B, h, n, d)
            heads = _heads(q, k, v, given[10], is_causal)  # (B, h, L, d_v)
            dq, dk, dv = torch.autograd.grad(heads, (q, k, v), _split(dy @ wo.T, num_heads))  # dH = dY W_O^T
        dq, dk, dv = (_concat(g) for g in (dq, dk, dv))  # (B, n, h*d)
        H = _concat(heads.detach())  # (B, L, h*d_v)
        d_wo = torch.einsum("blc,bla->ca", dy, H) if bugs.transposed_output_weight else torch.einsum("bla,blc->ac", H,
                                                                                                   dy)
        d_xkv = dk @ wk.T if bugs.key_path_only else dk @ wk.T + dv @ wv.T  # (B, S, d_model)
        sums = {"q": dq.mean(dim=(0, 1)) if bugs.bias_mean else dq.sum(dim=(0, 1)), "k": dk.sum(dim=(0, 1)),
                "v": dv.sum(dim=(0, 1)), "o": dy.sum(dim=(0, 1))}
        grads = [dq @ wq.T, d_xkv, torch.einsum("bld,bla->da", xq, dq), torch.einsum("bsd,bsa->da", xkv, dk),
                 torch.einsum("bsd,bsa->da", xkv, dv), d_wo]
        grads += [None if b is None else sums[name] for name, b in zip("qkvo", given[6:10])]
        return tuple(None if g is None else g.to(a.dtype) for g, a in zip(grads, given[:10])) + (None,) * 4


def multi_head(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads, attn_mask=None,
               is_causal=False, bugs=Bugs()):
    return MultiHead.apply(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, attn_mask, num_heads, is_causal, bugs)


def _with(bugs):
    def fn(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads, attn_mask=None,
           is_causal=False):
        return multi_head(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, num_heads=num_heads, attn_mask=attn_mask,
                          is_causal=is_causal, bugs=bugs)
    return fn


output_weight_transposed = breaks("mha.gradient.weights", **DECLARATION)(_with(Bugs(transposed_output_weight=True)))
output_weight_transposed.__doc__ = "dW_O = dY^T H, the transpose of H^T dY (the same shape: W_O is square)."

value_path_dropped = breaks("mha.gradient.inputs", **DECLARATION)(_with(Bugs(key_path_only=True)))
value_path_dropped.__doc__ = "dX_kv = dK W_K^T: the value path's dV W_V^T is not added."

bias_averaged = breaks("mha.gradient.weights", **DECLARATION)(_with(Bugs(bias_mean=True)))
bias_averaged.__doc__ = "db_Q the mean of the rows of dQ over the batch and the rows, not their sum."
