"""torch's ``scaled_dot_product_attention`` with ``is_causal`` as ``causal_lower_right``: the bottom-right causal rule.

torch's ``is_causal=True`` is aligned top-left (query ``i`` keeps key ``j`` iff ``j <= i``); its bottom-right rule
is an attention bias, ``torch.nn.attention.bias.causal_lower_right(L, S)``, a ``CausalBias`` given as ``attn_mask``
with ``is_causal=False``: query ``i`` keeps key ``j`` iff ``j <= i + S - L`` (clause ``mask.causal.bottom-right``;
DESIGN.md, "Variants", offset ``o = S - L``). The adapter maps the contract's ``is_causal=True`` to that bias and
declares ``causal_alignment="bottom-right"``, so kqv checks torch's bottom-right rule (``mask.causal.bottom-right``)
and decoding with a KV cache in chunks of rows (``cache.decode``, which feeds a bottom-right backend chunks of query
rows with ``is_causal`` against the growing prefix of keys).

Measured with torch 2.13 on CPU:

- the bias takes no other mask: ``scaled_dot_product_attention`` receives the ``CausalBias`` itself as
  ``attn_mask`` (its ``__torch_function__`` takes the call), so a bool or float mask cannot join it (a ``CausalBias``
  combined with a tensor is no longer one: ``AttributeError``), and ``is_causal=True`` beside it raises
  ``ValueError("CausalBias should not be used with causal=True")``: declared ``mask_with_causal=False``;
- the path it takes: with ``L = S`` the bias calls ``scaled_dot_product_attention(..., is_causal=True)`` (both
  alignments agree); otherwise flash and memory-efficient attention refuse CPU tensors
  (``torch.backends.cuda.can_use_flash_attention`` and ``can_use_efficient_attention`` are False), so it
  materialises the bool mask ``tril(ones(L, S), diagonal=S - L)`` and calls ``scaled_dot_product_attention`` with it,
  ``enable_gqa`` and ``scale`` passed on: float64, float32, float16 and bfloat16, grouped-query heads, ``Ev != E``,
  0 to 2 batch dims and non-contiguous inputs all agree with kqv's bottom-right reference;
- ``L > S``: the offset ``S - L`` is negative, so rows ``i < L - S`` keep no key. ``causal_lower_right`` warns
  ("Lower right causal bias will produce NaNs in the output when seq_len_q > seq_len_kv!"; the report counts it
  under the clause that drew such a call), but on CPU the materialised mask goes to the kernels that give a row with
  no kept key zeros (torch 2.5 and later), as torch's sdpa does for any fully masked row: declared
  ``masked_rows="zeros"`` (the warning is about the CUDA kernels).

No departure was found at any dtype; ``torch-sdpa-cpu`` (top-left) keeps the rest of the CPU checks.
"""

from __future__ import annotations

from ..adapters import TorchAdapter
from ..backend import Backend
from ..declaration import Declaration
from ..dtypes import DTYPES


class LowerRightAdapter(TorchAdapter):
    """torch tensors on the CPU; unavailable without ``torch.nn.attention.bias.causal_lower_right`` (torch 2.2+)."""

    def unavailable(self) -> str | None:
        return super().unavailable() or (None if _has_causal_lower_right() else
                                         "this torch has no torch.nn.attention.bias.causal_lower_right (torch 2.2+)")


def _has_causal_lower_right() -> bool:
    try:
        from torch.nn.attention.bias import causal_lower_right  # noqa: F401
    except ImportError:
        return False
    return True


def lower_right(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """The contract's call with ``is_causal=True`` given as ``attn_mask=causal_lower_right(L, S)``: key ``j`` is kept
    for query ``i`` iff ``j <= i + S - L``."""
    import torch
    from torch.nn.attention.bias import causal_lower_right

    if is_causal:
        if attn_mask is not None:
            raise ValueError("causal_lower_right is the attn_mask: it takes no other mask (mask_with_causal=False)")
        attn_mask = causal_lower_right(query.shape[-2], key.shape[-2])  # (L, S), kept iff j <= i + S - L
    return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                                            dropout_p=dropout_p, is_causal=False, scale=scale,
                                                            enable_gqa=enable_gqa)


def backend() -> Backend:
    declaration = Declaration(kind="sdpa", dtypes=DTYPES, mask_with_causal=False, masked_rows="zeros",
                              causal_alignment="bottom-right", gqa=True, backward=True,
                              conventions=(("is_causal", "attn_mask=causal_lower_right(L, S), is_causal=False"),))
    return Backend("torch-sdpa-cpu-lower-right", lower_right, declaration, LowerRightAdapter("cpu"),
                   description="torch.nn.functional.scaled_dot_product_attention on cpu, is_causal as "
                               "torch.nn.attention.bias.causal_lower_right")
