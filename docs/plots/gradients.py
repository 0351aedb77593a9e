"""The measured error of torch's gradients against the bound of clause gradient.accuracy, per dtype.

Each case is one of kqv check's (normal, large, far-apart and tied scores, masks, causal rows); dQ, dK and dV come from
torch's scaled_dot_product_attention through autograd, pinned to the math kernel (solid) and to the CPU flash kernel
(dashed), and each element's error against the exact gradient on the rounded inputs (the float64 reference for the
low precisions, the mpmath oracle at float64) is divided by its bound. Without torch, kqv's reference rounded to the
dtype stands in.
"""

import matplotlib.pyplot as plt
import numpy as np

from kqv.conformance.dtypes import as_float64, round_to
from kqv.conformance.kinds.sdpa.backward_bound import backward_bound
from kqv.conformance.kinds.sdpa.bound import prepared
from kqv.conformance.kinds.sdpa.call import fresh
from kqv.conformance.kinds.sdpa.case import SdpaCase
from kqv.conformance.tolerance import Precision
from kqv.reference import scaled_dot_product_attention_backward
from kqv.reference.backward import backward
from kqv.reference.backward_stages import input_gradients
from kqv.reference.oracle import oracle_sdpa_backward

try:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    KERNELS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION}
except ImportError:
    torch, KERNELS = None, {"reference": None}


def torch_gradients(inputs, grad_output, kernel):
    """(dQ, dK, dV) of torch's sdpa pinned to ``kernel``, as float64 (or the reference's, rounded to the dtype)."""
    arrays = [as_float64(a) for a in (inputs.query, inputs.key, inputs.value)]
    mask = inputs.attn_mask
    if torch is None:
        found = scaled_dot_product_attention_backward(*arrays, as_float64(grad_output), mask, 0.0, inputs.is_causal)
        return [as_float64(round_to(g, inputs.query.dtype.name)) for g in found[:3]]
    dtype = getattr(torch, "bfloat16" if inputs.query.dtype.name == "bfloat16" else inputs.query.dtype.name)
    leaves = [torch.from_numpy(a).to(dtype).requires_grad_(True) for a in arrays]
    with sdpa_kernel(KERNELS[kernel]):
        out = torch.nn.functional.scaled_dot_product_attention(
            *leaves, attn_mask=None if mask is None else torch.from_numpy(mask), is_causal=inputs.is_causal)
        found = torch.autograd.grad(out, leaves, torch.from_numpy(as_float64(grad_output)).to(dtype))
    return [g.to(torch.float64).numpy() for g in found]


def ratios(inputs, grad_output, gradients, dtype):
    """|error| / bound of every element of dQ, dK and dV."""
    call = prepared(inputs)
    dO = as_float64(grad_output)
    if dtype == "float64":
        arrays = [as_float64(a) for a in (inputs.query, inputs.key, inputs.value)]
        exact = oracle_sdpa_backward(*arrays, dO, inputs.attn_mask, inputs.is_causal)
    else:
        exact = input_gradients(call, inputs.key.shape, inputs.value.shape, *backward(call, dO))
    bound = backward_bound(call, dO, Precision.of(dtype), exact, inputs.key.shape, inputs.value.shape)
    return np.concatenate([(np.abs(g - e) / b).ravel() for g, e, b in zip(gradients, exact[:3], bound[:3])])


rng = np.random.default_rng(0)
fig, ax = plt.subplots()
bins = np.logspace(-10, 8, 73)


def draw(values, **style):
    """The share of the elements at each ratio; exact ones (ratio 0, e.g. the zeros of masked keys) left out."""
    values = values[values > 0]
    ax.hist(values, bins=bins, weights=np.full(values.size, 1 / values.size), **style)
    return values.max()


for number, dtype in enumerate(("float64", "float32", "float16", "bfloat16")):
    for kernel, style in zip(KERNELS, ("-", "--")):
        found = []
        for seed in range(8 if dtype == "float64" else 40):
            L, S, E = (int(n) for n in rng.integers(1, 6 if dtype == "float64" else 24, size=3))
            case = SdpaCase(dtype=dtype, batch=(1, 2), L=L, S=S, E=E, Ev=E, seed=seed,
                            values=str(rng.choice(["normal", "large", "far-apart", "ties"])),
                            mask=str(rng.choice(["none", "bool"])), is_causal=bool(rng.integers(2)) and L <= S)
            inputs = case.build()
            if inputs.attn_mask is not None and inputs.is_causal:
                inputs = inputs.replace(is_causal=False)  # torch takes one or the other
            grad_output = fresh(case, inputs.output_shape(), 81)
            found.append(ratios(inputs, grad_output, torch_gradients(inputs, grad_output, kernel), dtype))
        values = np.concatenate(found)
        ax.plot([], [], linestyle=style, color=f"C{number}", label=f"{dtype} {kernel} (max {values.max():.2g})")
        draw(values, histtype="step", linestyle=style, color=f"C{number}")
lowered = []
for seed in range(8):
    case = SdpaCase(dtype="float64", batch=(2,), L=5, S=6, E=4, Ev=4, seed=seed)
    inputs = case.build()
    grad_output = fresh(case, inputs.output_shape(), 81)
    f32 = [a.astype(np.float32) for a in (inputs.query, inputs.key, inputs.value, grad_output)]
    gradients = [as_float64(g.astype(np.float32)) for g in scaled_dot_product_attention_backward(*f32)[:3]]
    lowered.append(ratios(inputs, grad_output, gradients, "float64"))
worst = draw(np.concatenate(lowered), histtype="stepfilled", alpha=0.3, color="0.5")
ax.fill_between([], [], color="0.5", alpha=0.3, label=f"float64 backward in float32 (max {worst:.2g})")
ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
ax.text(1.3, ax.get_ylim()[1] * 0.6, "bound", fontsize=8)
ax.set_xscale("log")
ax.set_xlabel("|error| / bound, per element of dQ, dK and dV")
ax.set_ylabel("share of the elements")
ax.legend(fontsize=6, loc="upper left", ncol=2)
fig.tight_layout()
