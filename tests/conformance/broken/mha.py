"""Broken ``mha`` implementations (NumPy), one plausible bug each; ``breaks`` names the clause."""

from __future__ import annotations

import numpy as np

from ._base import breaks, stable_softmax


def multi_head(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads, attn_mask=None,
               is_causal=False, head_order=None, scale_width=None, keys_from=None, use_b_o=True, use_b_v=True,
               use_b_q=True, interleaved=False, invert_mask=False, head_features=None, compute=np.float64,
               mask_rule=None):
    """Multi-head attention in ``compute`` (float64) with the hooks of the variants; returned in x_q's dtype.

    ``mask_rule(attn_mask, is_causal) -> (attn_mask, is_causal)`` changes the mask and the causal flag first.
    """
    out_dtype = x_q.dtype
    if mask_rule is not None:
        attn_mask, is_causal = mask_rule(attn_mask, is_causal)
    f = {name: None if a is None else np.asarray(a, dtype=compute)
         for name, a in dict(x_q=x_q, x_kv=x_kv, w_q=w_q, w_k=w_k, w_v=w_v, w_o=w_o, b_q=b_q, b_k=b_k, b_v=b_v,
                             b_o=b_o).items()}
    h = num_heads
    source = f["x_q"] if keys_from == "x_q" else f["x_kv"]

    def project(x, w, b, use=True):
        return x @ w + (b if b is not None and use else 0.0)

    def split(x):  # (B, n, h*d) -> (B, h, n, d)
        B, n, width = x.shape
        if interleaved:
            return x.reshape(B, n, width // h, h).transpose(0, 3, 1, 2)
        return x.reshape(B, n, h, width // h).transpose(0, 2, 1, 3)

    q = split(project(f["x_q"], f["w_q"], f["b_q"], use_b_q))
    k = split(project(source, f["w_k"], f["b_k"]))
    v = split(project(source, f["w_v"], f["b_v"], use_b_v))
    d_k = q.shape[-1]
    if head_features is not None:
        q, k = q[..., :head_features], k[..., :head_features]  # (B, h, n, head_features): a kernel's first tile
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(scale_width or d_k)  # (B, h, L, S)
    L, S = scores.shape[-2:]
    if attn_mask is not None:
        mask = np.asarray(attn_mask)[:, None] if np.ndim(attn_mask) == 3 else np.asarray(attn_mask)
        if mask.dtype == np.bool_:
            scores = np.where(~mask if invert_mask else mask, scores, -np.inf)
        else:
            scores = scores + mask.astype(compute)
    if is_causal:
        scores = np.where(np.arange(S)[None, :] <= np.arange(L)[:, None], scores, -np.inf)
    heads = stable_softmax(scores) @ v  # (B, h, L, d_v)
    if head_order is not None:
        heads = heads[:, head_order(h)]
    B, _, _, d_v = heads.shape
    concat = heads.transpose(0, 2, 1, 3).reshape(B, L, h * d_v)  # (B, L, h*d_v)
    return project(concat, f["w_o"], f["b_o"], use_b_o).astype(out_dtype)


@breaks("mha.concat")
def heads_reversed(*args, **kwargs):
    """Concatenates the heads in reverse order."""
    return multi_head(*args, **kwargs, head_order=lambda h: list(reversed(range(h))))


@breaks("mha.head")
def scale_by_d_model(*args, **kwargs):
    """Scales every head by 1/sqrt(d_model) instead of 1/sqrt(d_k)."""
    return multi_head(*args, **kwargs, scale_width=args[0].shape[-1])


@breaks("mha.cross-attention")
def keys_from_queries(*args, **kwargs):
    """Projects keys and values from x_q: self-attention only."""
    return multi_head(*args, **kwargs, keys_from="x_q")


@breaks("mha.output-projection")
def output_bias_dropped(*args, **kwargs):
    """Forgets b_O."""
    return multi_head(*args, **kwargs, use_b_o=False)


@breaks("projection.value")
def value_bias_dropped(*args, **kwargs):
    """Forgets b_V."""
    return multi_head(*args, **kwargs, use_b_v=False)


@breaks("projection.query")
def query_bias_dropped(*args, **kwargs):
    """Forgets b_Q."""
    return multi_head(*args, **kwargs, use_b_q=False)


@breaks("mha.split")
def heads_interleaved(*args, **kwargs):
    """Head i takes every h-th column (i, i + h, ...) instead of the block i*d_k:(i+1)*d_k."""
    return multi_head(*args, **kwargs, interleaved=True)


@breaks("mask.bool")
def mask_polarity_of_torch(*args, **kwargs):
    """Passes the contract's keep-mask on as torch.nn.MultiheadAttention's ignore-mask."""
    return multi_head(*args, **kwargs, invert_mask=True)


@breaks("attention.tile-boundaries")
def head_width_64(*args, **kwargs):
    """Uses only the first 64 features of each head's query and key (d_k past one tile)."""
    return multi_head(*args, **kwargs, head_features=64)


def _is_bool(mask) -> bool:
    return mask is not None and np.asarray(mask).dtype == np.bool_


@breaks("mask.causal.top-left")
def causal_ignored(*args, **kwargs):
    """Takes is_causal and never applies it."""
    return multi_head(*args, **kwargs, mask_rule=lambda mask, causal: (mask, False))


@breaks("mask.causal.top-left")
def causal_dropped_with_mask(*args, **kwargs):
    """Applies is_causal only when no attn_mask is given."""
    return multi_head(*args, **kwargs, mask_rule=lambda mask, causal: (mask, causal and mask is None))


@breaks("mask.bool")
def bool_mask_ignored(*args, **kwargs):
    """Honours float masks but drops bool ones."""
    return multi_head(*args, **kwargs, mask_rule=lambda mask, causal: (None if _is_bool(mask) else mask, causal))


@breaks("mask.additive")
def float_mask_ignored(*args, **kwargs):
    """Honours bool masks but drops float ones."""
    return multi_head(*args, **kwargs,
                      mask_rule=lambda mask, causal: (mask if mask is None or _is_bool(mask) else None, causal))


@breaks("mask.additive")
def float_mask_as_keep(*args, **kwargs):
    """Treats a float mask as a keep-mask (nonzero = keep) instead of adding it."""
    return multi_head(*args, **kwargs, mask_rule=lambda mask, causal: (
        mask if mask is None or _is_bool(mask) else np.asarray(mask, dtype=np.float64) != 0, causal))


@breaks("mha.single-head", dtypes=("float64",))
def float32_inside(*args, **kwargs):
    """Takes float64, computes in float32, returns float64."""
    return multi_head(*args, **kwargs, compute=np.float32)
