"""``torch.nn.MultiheadAttention`` in its module forms, as ``mha`` backends.

Each form builds the module, loads the seed's weights (``in_proj_weight = [W_Q^T; W_K^T; W_V^T]``,
``out_proj.weight = W_O^T``) and calls it the way a model would:

- ``eval``: ``module.eval()`` under ``torch.no_grad()``, ``batch_first=True``,
  ``need_weights=False``; self-attention passes one tensor as query, key and value, which lets
  torch take its fused "fast path";
- ``eval-weights``: the same with ``need_weights=True`` (the averaged attention weights are
  computed and returned alongside);
- ``train``: ``module.train()`` with ``dropout=0``, autograd on, ``need_weights=False``;
- ``seq-first``: ``batch_first=False``, so the inputs go in as ``(L, B, d_model)``.

The contract's keep-mask becomes torch's ignore-mask (True = ignore): a mask that is the same for
every query row of an entry (a padding mask) goes in as ``key_padding_mask (B, S)``, any other as
``attn_mask (B * num_heads, L, S)``; ``is_causal`` becomes an explicit causal ``attn_mask``.

Measured with torch 2.13: a row whose every key is masked gives zeros on the
``scaled_dot_product_attention`` path (``need_weights=False``), NaN when the weights are computed
(``need_weights=True``) and NaN on the eval fast path, so the ``eval`` form's convention depends
on whether the call is self-attention (a known departure from ``mask.fully-masked-row``). On the
``need_weights=True`` path at bfloat16, ``torch.bmm`` on a CPU with AVX-512 (oneDNN's kernel)
spreads those NaN rows into rows that keep keys (found by ``kqv check --profile ci --seed 1``:
L = S = 37, B = 3, one head), a second departure from the same clause, declared for that dtype;
on an AVX2-only CPU it does not show, and the clause xpasses there.
"""

from __future__ import annotations

from ..adapters import TorchAdapter
from ..backend import Backend
from ..declaration import Declaration, ExpectedFailure
from ..dtypes import DTYPES

FORMS = {
    "eval": dict(train=False, need_weights=False, batch_first=True),
    "eval-weights": dict(train=False, need_weights=True, batch_first=True),
    "train": dict(train=True, need_weights=False, batch_first=True),
    "seq-first": dict(train=False, need_weights=False, batch_first=False),
}


def _masks(attn_mask, is_causal, num_heads, L, S, dtype):
    """``(attn_mask, key_padding_mask)`` in torch's polarity (True = ignore) from the contract's mask."""
    import torch

    causal = torch.ones(L, S, dtype=torch.bool, device=attn_mask.device if attn_mask is not None else None).tril() \
        if is_causal else None  # (L, S), True = keep
    if attn_mask is None:
        return (None if causal is None else ~causal), None
    padding = attn_mask.dtype == torch.bool and attn_mask.shape[0] > 1 and bool((attn_mask == attn_mask[:, :1]).all())
    if padding:
        return (None if causal is None else ~causal), ~attn_mask[:, 0]  # (B, S): True = padding
    if attn_mask.dtype == torch.bool:
        keep = attn_mask if causal is None else attn_mask & causal
        mask = ~keep  # (B or 1, L, S), True = ignore
    else:
        mask = (attn_mask if causal is None else attn_mask.masked_fill(~causal, float("-inf"))).to(dtype)
    return (mask[0] if mask.shape[0] == 1 else mask.repeat_interleave(num_heads, dim=0)), None  # (B * h, L, S)


def form(name: str):
    """The ``mha`` function that calls ``torch.nn.MultiheadAttention`` in the form ``name``."""
    options = FORMS[name]

    def mha(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads, attn_mask=None,
            is_causal=False):
        import contextlib

        import torch

        d_model = x_q.shape[-1]
        module = torch.nn.MultiheadAttention(d_model, num_heads, dropout=0.0, bias=True,
                                             batch_first=options["batch_first"], device=x_q.device, dtype=x_q.dtype)

        def bias(b):
            return torch.zeros(d_model, dtype=x_q.dtype, device=x_q.device) if b is None else b

        with torch.no_grad():
            module.in_proj_weight.copy_(torch.cat([w_q.T, w_k.T, w_v.T]))  # (3 d_model, d_model)
            module.in_proj_bias.copy_(torch.cat([bias(b_q), bias(b_k), bias(b_v)]))
            module.out_proj.weight.copy_(w_o.T)  # (d_model, d_model)
            module.out_proj.bias.copy_(bias(b_o))
        module.train(options["train"])
        mask, padding = _masks(attn_mask, is_causal, num_heads, x_q.shape[-2], x_kv.shape[-2], x_q.dtype)
        query, key = (x_q, x_kv) if options["batch_first"] else (x_q.transpose(0, 1), x_kv.transpose(0, 1))  # (L, B, d)
        value = key
        with contextlib.nullcontext() if options["train"] else torch.no_grad():
            output, _ = module(query, key, value, attn_mask=mask, key_padding_mask=padding,
                               need_weights=options["need_weights"])
        return output if options["batch_first"] else output.transpose(0, 1)  # (B, L, d_model)
    mha.__name__ = f"mha_{name.replace('-', '_')}"
    return mha


PATH_DEPENDENT = ExpectedFailure(
    "mask.fully-masked-row", "a row that keeps no key gives zeros on the scaled_dot_product_attention path but NaN on "
    "the eval fast path (self-attention with one tensor as query, key and value): the convention depends on the call")


BMM_SPREADS_NAN = ExpectedFailure(
    "mask.fully-masked-row", "at bfloat16 on a CPU with AVX-512, where torch sends the matmul to oneDNN, torch.bmm "
    "(weights times values on the need_weights=True path) carries the NaN of a fully masked row into other rows of its "
    "output: 48 of 54 clean rows for a (3, 37, 37) by (3, 37, 1) product with every other row NaN, none at float32; "
    "an AVX2-only CPU keeps the NaN in its row (xpass)", dtypes=("bfloat16",))


def backend(name: str, device: str = "cpu") -> Backend:
    expected = {"eval": (PATH_DEPENDENT,), "eval-weights": (BMM_SPREADS_NAN,)}.get(name, ())
    declaration = Declaration(
        kind="mha", dtypes=DTYPES, device=device, heads_split_model=True, value_width=False,
        causal_alignment="top-left", expected_failures=expected,
        conventions=(("mask polarity", "True = ignore (inverted by the adapter; padding masks as key_padding_mask)"),
                     ("layout", "(B, L, d_model)" if FORMS[name]["batch_first"] else "(L, B, d_model), transposed")),
    )
    return Backend(f"torch-mha-{name}", form(name), declaration, TorchAdapter(device),
                   description=f"torch.nn.MultiheadAttention module, form {name}")
