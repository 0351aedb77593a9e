"""torch's ``scaled_dot_product_attention`` through one kernel at a time (``torch.nn.attention.sdpa_kernel``).

On CPU: the math kernel (``MATH``, plain tensor operations) and the fused one
(``FLASH_ATTENTION``, an online-softmax kernel); on CUDA: ``FLASH_ATTENTION``,
``EFFICIENT_ATTENTION`` and ``CUDNN_ATTENTION``. A pinned kernel refuses what it cannot do
("No available kernel") instead of falling back, so each declares its own limits.

Measured with torch 2.13 on CPU: the fused kernel takes only 4-D inputs ``(B, H, L, E)`` with ``Ev = E``, and only
inputs whose last dimension has unit stride (the dispatcher sends other inputs to the math kernel; pinned, they fail:
a known departure from ``impl.strided-inputs``); both CPU kernels take ``enable_gqa``. The fused CPU kernel's lse
(``return_lse=True``) comes from the op it runs, ``torch.ops.aten._scaled_dot_product_flash_attention_for_cpu``, which
returns ``(output, logsumexp)``: the natural-log lse in the layout ``(B, H, L)``, float32 for float16 and bfloat16
inputs and the inputs' dtype otherwise; it takes grouped heads as they come and only float masks (a bool mask goes in
as 0 / ``-inf``), and gives a row with no kept key the lse 0 (a known departure from ``lse.empty-row``; its output row
is 0). It declares ``lse`` with two more measured departures (torch 2.13), both from the vectorised exponential of the
kernel, which each full vector of 16 keys goes through (torch's AVX-512 build,
``torch.backends.cpu.get_cpu_capability()``; the keys left over take a scalar ``exp``). For float16 and bfloat16
inputs that exponential is an approximation accurate to the storage dtype (torch's ``fexp_u20``: ``exp(0)`` comes back
0.99995), which the half-precision output absorbs but which leaves the float32 lse low by about 5e-5 (``log 16`` comes
back 2.7725353 for 2.7725887 with every score 0), 10 to 20 times the lse's bound: a departure from ``lse.definition``
at those dtypes. At float32 it gives 0 for every result below ``2^-125``, the lowest binade of the normal numbers
(``exp(-87.0)``, 1.6e-38, is 0 in a row of 32 keys): a weight there comes back 0 in ``lse.weights``, which allows a
flush below the smallest normal only. The CUDA declarations follow torch's documented constraints and were not
measured here (no GPU): flash declares ``enable_gqa`` (its dispatcher admits grouped heads); the efficient and cuDNN
kernels do not, which skips the ``gqa.*`` clauses rather than risk false alarms on a kernel nobody here could run.
"""

from __future__ import annotations

from ..adapters import TorchAdapter
from ..backend import Backend
from ..declaration import Declaration, ExpectedFailure
from ..dtypes import DTYPES

EMPTY_LSE = ExpectedFailure("lse.empty-row", "the CPU flash kernel gives a row with no kept key the lse 0, not -inf "
                            "(its output row is 0, as declared)")
HALF_EXP = ExpectedFailure("lse.definition", "for float16 and bfloat16 inputs the kernel's vectorised exp is accurate "
                            "to the storage dtype only (exp(0) = 0.99995): its float32 lse is low by about 5e-5 in rows "
                            "of 16 keys or more", dtypes=("float16", "bfloat16"))
FLUSHED_EXP = ExpectedFailure("lse.weights", "the kernel's vectorised exp gives 0 below 2^-125, one binade above the "
                              "smallest normal (exp(-87.0) = 0 in a row of 32 keys): such a weight comes back 0",
                              dtypes=("float32",))
STRIDES = ExpectedFailure("impl.strided-inputs", "the pinned fused kernel refuses inputs whose last dimension is not "
                          "contiguous (\"No available kernel\"); torch's dispatcher would run the math kernel instead")


def pinned(kernel: str):
    """``sdpa`` with torch's dispatcher restricted to ``kernel`` (a ``torch.nn.attention.SDPBackend`` name)."""
    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(getattr(SDPBackend, kernel)):
            return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                                                    dropout_p=dropout_p, is_causal=is_causal,
                                                                    scale=scale, enable_gqa=enable_gqa)
    sdpa.__name__ = f"sdpa_{kernel.lower()}"
    return sdpa


def flash_cpu(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
              return_lse=False):
    """The CPU flash kernel: torch's ``sdpa`` pinned to it, or with ``return_lse`` the op it runs, which also returns
    the lse ``(B, H, L)``, the contract's ``(..., L)`` for 4-D inputs (clause ``lse.definition``)."""
    if not return_lse:
        return pinned("FLASH_ATTENTION")(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    import torch

    if attn_mask is not None and attn_mask.dtype == torch.bool:  # the op takes float masks only
        attn_mask = torch.zeros(attn_mask.shape, dtype=query.dtype).masked_fill(~attn_mask, float("-inf"))
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, dropout_p, is_causal,
                                                                      attn_mask=attn_mask, scale=scale)


COMMON = dict(mask_with_causal=False, masked_rows="zeros", causal_alignment="top-left", backward=True)
DECLARATIONS = {
    ("cpu", "MATH"): Declaration(kind="sdpa", dtypes=DTYPES, gqa=True, **COMMON),
    ("cpu", "FLASH_ATTENTION"): Declaration(kind="sdpa", dtypes=DTYPES, batch_dims=(2,), value_width=False, gqa=True,
                                            lse=True, expected_failures=(STRIDES, EMPTY_LSE, HALF_EXP, FLUSHED_EXP),
                                            **COMMON),
    ("cuda", "FLASH_ATTENTION"): Declaration(kind="sdpa", dtypes=("float16", "bfloat16"), device="cuda", batch_dims=(2,),
                                             value_width=False, bool_mask=False, float_mask=False, gqa=True,
                                             expected_failures=(STRIDES,), **COMMON),
    ("cuda", "EFFICIENT_ATTENTION"): Declaration(kind="sdpa", dtypes=("float32", "float16", "bfloat16"), device="cuda",
                                                 batch_dims=(2,), expected_failures=(STRIDES,), **COMMON),
    ("cuda", "CUDNN_ATTENTION"): Declaration(kind="sdpa", dtypes=("float16", "bfloat16"), device="cuda",
                                             batch_dims=(2,), value_width=False, bool_mask=False, float_mask=False,
                                             expected_failures=(STRIDES,), **COMMON),
}


class KernelAdapter(TorchAdapter):
    """torch tensors on ``device``; unavailable when the device or the kernel is missing."""

    def __init__(self, device: str, kernel: str) -> None:
        super().__init__(device)
        self.kernel = kernel

    def unavailable(self) -> str | None:
        missing = super().unavailable()
        if missing:
            return missing
        from torch.nn.attention import SDPBackend

        if not hasattr(SDPBackend, self.kernel):
            return f"this torch has no {self.kernel} kernel"
        return None


def backend(device: str, kernel: str) -> Backend:
    name = f"torch-sdpa-{device}-{kernel.split('_')[0].lower()}"
    fn = flash_cpu if (device, kernel) == ("cpu", "FLASH_ATTENTION") else pinned(kernel)
    return Backend(name, fn, DECLARATIONS[(device, kernel)], KernelAdapter(device, kernel),
                   description=f"torch.nn.functional.scaled_dot_product_attention pinned to {kernel} on {device}")
