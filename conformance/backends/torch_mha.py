"""``torch.nn.MultiheadAttention`` as an ``mha`` backend, the weights mapped from the seed's notation.

The seed writes ``Q = X W_Q`` with ``W_Q (d_model, h d_k)``; torch stores ``in_proj_weight``
``(3 d_model, d_model)`` and computes ``x W^T``, so ``in_proj_weight = [W_Q^T; W_K^T; W_V^T]`` and
``out_proj.weight = W_O^T``. Its bool ``attn_mask`` is True where a key is *ignored*, the opposite
polarity of the contract, so the mask is inverted; a ``(B, L, S)`` mask becomes torch's
``(B * num_heads, L, S)``; ``is_causal`` becomes an explicit mask (torch takes ``is_causal`` only as
a hint about a mask it is also given). Its heads have width ``d_model / num_heads``.

The module runs in eval mode with ``need_weights=False``, through ``torch.func.functional_call`` with the contract's
weights and biases as its parameters, so that autograd differentiates the call with respect to every one of them
(clauses ``mha.gradient.inputs``, ``mha.gradient.weights``). For self-attention torch then takes its
"fast path" (a fused native kernel) when query, key and value are one tensor; this backend passes
``x_kv`` as a copy so that every call takes the same path, ``F.multi_head_attention_forward`` over
``scaled_dot_product_attention``, whose fully masked rows are zeros. (The fast path gives NaN
there; the module forms of torch.nn.MultiheadAttention, fast path included, are separate backends.)
"""

from __future__ import annotations

from ..adapters import TorchAdapter
from ..backend import Backend
from ..declaration import Declaration
from ..dtypes import DTYPES


def _torch_mask(attn_mask, is_causal, num_heads, L, S, dtype, device):
    """The contract's keep-mask (or additive mask) and causal rule as torch's ``attn_mask``."""
    import torch

    if attn_mask is None and not is_causal:
        return None
    causal = torch.ones(L, S, dtype=torch.bool, device=device).tril() if is_causal else None  # (L, S), True = keep
    if attn_mask is None:
        return ~causal  # (L, S), True = ignore
    if attn_mask.dtype == torch.bool:
        keep = attn_mask if causal is None else attn_mask & causal  # (B or 1, L, S)
        mask = ~keep  # True = ignore
    else:
        mask = attn_mask if causal is None else attn_mask.masked_fill(~causal, float("-inf"))
        mask = mask.to(dtype)
    if mask.shape[0] == 1:
        return mask[0]  # (L, S), shared by every batch entry and head
    return mask.repeat_interleave(num_heads, dim=0)  # (B * num_heads, L, S), batch-major as torch expects


def mha(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads, attn_mask=None,
        is_causal=False):
    import torch

    d_model = x_q.shape[-1]
    if x_kv is x_q:
        x_kv = x_q.clone()  # one path for self- and cross-attention (see the module docstring)
    module = torch.nn.MultiheadAttention(d_model, num_heads, bias=True, batch_first=True, device=x_q.device,
                                         dtype=x_q.dtype).eval()

    def bias(b, width):
        return torch.zeros(width, dtype=x_q.dtype, device=x_q.device) if b is None else b

    parameters = {  # the contract's arrays themselves, so that autograd reaches them (functional_call)
        "in_proj_weight": torch.cat([w_q.T, w_k.T, w_v.T]),  # (3 d_model, d_model)
        "in_proj_bias": torch.cat([bias(b_q, d_model), bias(b_k, d_model), bias(b_v, d_model)]),  # (3 d_model,)
        "out_proj.weight": w_o.T,  # (d_model, d_model)
        "out_proj.bias": bias(b_o, d_model),
    }
    mask = _torch_mask(attn_mask, is_causal, num_heads, x_q.shape[-2], x_kv.shape[-2], x_q.dtype, x_q.device)
    output, _ = torch.func.functional_call(module, parameters, (x_q, x_kv, x_kv),
                                           {"attn_mask": mask, "need_weights": False})
    return output


def backend(device: str = "cpu") -> Backend:
    declaration = Declaration(
        kind="mha", dtypes=DTYPES, device=device, heads_split_model=True, value_width=False, masked_rows="zeros",
        causal_alignment="top-left", backward=True,
        conventions=(("mask polarity", "True = ignore (inverted by the adapter)"),
                     ("layout", "(B, L, d_model), batch_first=True")),
    )
    return Backend(f"torch-mha-{device}", mha, declaration, TorchAdapter(device),
                   description=f"torch.nn.MultiheadAttention (eval, batch_first, need_weights=False) on {device}")
