"""``torch.nn.functional.scaled_dot_product_attention`` as an ``sdpa`` backend, on CPU and on CUDA.

Its contract is the ``sdpa`` contract itself, ``enable_gqa`` included (grouped-query attention,
torch 2.5 and later); what it does not do is declared: an ``attn_mask`` together with ``is_causal``
is refused, and a fully masked row gives zeros (torch 2.5 and later).
"""

from __future__ import annotations

from ..adapters import TorchAdapter
from ..backend import Backend
from ..declaration import Declaration
from ..dtypes import DTYPES


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    import torch

    return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                                            dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                                                            enable_gqa=enable_gqa)


def backend(device: str) -> Backend:
    declaration = Declaration(kind="sdpa", dtypes=DTYPES, device=device, mask_with_causal=False,
                              masked_rows="zeros", causal_alignment="top-left", gqa=True, backward=True)
    return Backend(f"torch-sdpa-{device}", sdpa, declaration, TorchAdapter(device),
                   description=f"torch.nn.functional.scaled_dot_product_attention on {device}, default kernel choice")
