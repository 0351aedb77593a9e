"""torch's scaled_dot_product_attention run with subnormal numbers flushed to zero, forward and backward: the way XLA
computes on the CPU, and the way a CUDA kernel built with ``-ftz`` computes in float32.

``torch.set_flush_denormal(True)`` sets the x86 FTZ and DAZ modes of the calling thread: every result below the
smallest normal number becomes 0 and every subnormal input reads as 0. Intra-op worker threads keep their own
modes, so the call runs on one thread. Both modes are switched off again before the function returns.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

DECLARATION = dict(masked_rows="zeros", causal_alignment="top-left", mask_with_causal=False, backward=True)


def supported() -> bool:
    """Whether this CPU can flush subnormals (x86 with SSE3)."""
    supported = torch.set_flush_denormal(True)
    torch.set_flush_denormal(False)
    return supported


@contextmanager
def flushed():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


class FlushedAttention(torch.autograd.Function):
    """The forward and its autograd backward, each computed with subnormals flushed."""

    @staticmethod
    def forward(ctx, query, key, value, attn_mask, is_causal, scale):
        with flushed(), torch.enable_grad():
            inputs = tuple(a.detach().requires_grad_() for a in (query, key, value))
            output = torch.nn.functional.scaled_dot_product_attention(*inputs, attn_mask=attn_mask,
                                                                      is_causal=is_causal, scale=scale)
        ctx.graph = (inputs, output)
        return output.detach()

    @staticmethod
    def backward(ctx, grad_output):
        inputs, output = ctx.graph
        with flushed():
            grads = torch.autograd.grad(output, inputs, grad_output)
        return grads + (None, None, None)  # no gradient of the mask, is_causal or the scale


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    return FlushedAttention.apply(query, key, value, attn_mask, is_causal, scale)
