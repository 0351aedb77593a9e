"""A tiled attention kernel in NumPy, written the way flash kernels are, with one classic bug.

The keys are taken 64 at a time; each query row keeps a running max ``m``, a running
denominator ``l`` and a running weighted sum ``acc`` of the values (an online softmax). When a
later tile raises the running max, everything summed so far must be scaled by
``exp(m_old - m_new)``: this kernel does it for ``l`` but forgets ``acc``. With 64 keys or fewer
there is one tile and the output is right; past 64 keys it is wrong whenever a later tile holds
a larger score. The docs' front page checks it with ``kqv check`` during the build.
"""

import numpy as np

TILE = 64  # keys per tile


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """``sdpa`` contract: softmax(query key^T * scale + mask) value, over arrays of shape (..., L, E)."""
    work = np.float64 if query.dtype == np.float64 else np.float32
    q, k, v = (np.asarray(x, dtype=work) for x in (query, key, value))
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    keep = np.zeros((L, S), dtype=work)  # (L, S): 0 where a key takes part, -inf where it is masked
    if is_causal:
        keep = np.where(np.tril(np.ones((L, S), dtype=bool)), 0.0, -np.inf).astype(work)
    if attn_mask is not None:
        bias = np.where(attn_mask, 0.0, -np.inf) if attn_mask.dtype == bool else np.asarray(attn_mask, dtype=work)
        keep = keep + bias
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], keep.shape[:-2])
    m = np.full((*batch, L, 1), -np.inf, dtype=work)  # running max of each row
    l = np.zeros((*batch, L, 1), dtype=work)  # running denominator
    acc = np.zeros((*batch, L, v.shape[-1]), dtype=work)  # running sum of weights times values
    for start in range(0, S, TILE):
        tile = slice(start, start + TILE)
        scores = q @ np.swapaxes(k[..., tile, :], -1, -2) * scale + keep[..., tile]  # (..., L, tile)
        m_new = np.maximum(m, scores.max(axis=-1, keepdims=True))
        shift = np.where(np.isfinite(m_new), m_new, 0.0)  # a row masked so far: nothing to shift
        p = np.exp(scores - shift)
        l = l * np.exp(m - shift) + p.sum(axis=-1, keepdims=True)
        acc = acc + p @ v[..., tile, :]  # BUG: acc * np.exp(m - shift) + ...
        m = m_new
    return (acc / l).astype(query.dtype)
