"""Multi-head attention in float64 (Vaswani et al. 2017, section 3.2.2).

``MultiHead(X_q, X_kv) = Concat(head_1, ..., head_h) W_O + b_O`` with
``head_i = Attention(Q_i, K_i, V_i)`` and ``Q = X_q W_Q + b_Q``,
``K = X_kv W_K + b_K``, ``V = X_kv W_V + b_V``; head ``i`` takes columns
``i*d_k:(i+1)*d_k`` of ``Q`` and ``K`` and ``i*d_v:(i+1)*d_v`` of ``V``.
Weights act on the right (``y = x W``), so ``w_q`` is ``(d_model, h*d_k)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .sdpa import scaled_dot_product_attention
from .validation import as_float64, check_bool, check_num_heads, check_shape


class _Checked(NamedTuple):
    x_q: np.ndarray  # (B, L, d_model)
    x_kv: np.ndarray  # (B, S, d_model)
    weights: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    num_heads: int
    attn_mask: np.ndarray | None  # (B or 1, 1, L, S)
    unbatched: bool


def check_mha_inputs(x_q: Any, x_kv: Any, w_q: Any, w_k: Any, w_v: Any, w_o: Any, b_q: Any, b_k: Any, b_v: Any,
                     b_o: Any, num_heads: Any, attn_mask: Any, is_causal: Any) -> _Checked:
    """Validate the arguments of :func:`multi_head_attention` (shared with the oracle).

    Returns float64 arrays with a batch axis (added for unbatched 2-D inputs) and
    the mask reshaped to ``(B or 1, 1, L, S)`` so that it broadcasts over heads.
    """
    check_bool("is_causal", is_causal)
    x_q = as_float64("x_q", x_q)
    x_kv = as_float64("x_kv", x_kv)
    if x_q.ndim not in (2, 3):
        raise ValueError(f"x_q: expected shape (B, L, d_model) or (L, d_model), got {x_q.shape}")
    unbatched = x_q.ndim == 2
    if unbatched:
        x_q = x_q[None]  # (1, L, d_model)
        if x_kv.ndim != 2:
            raise ValueError(f"x_kv: expected shape (S, {x_q.shape[-1]}) like the unbatched x_q "
                             f"{x_q.shape[1:]}, got {x_kv.shape}")
        x_kv = x_kv[None]  # (1, S, d_model)
    B, L, d_model = x_q.shape
    if x_kv.ndim != 3 or x_kv.shape[0] != B or x_kv.shape[2] != d_model:
        raise ValueError(f"x_kv: expected shape ({B}, S, {d_model}) = (B, S, d_model) matching x_q "
                         f"{x_q.shape}, got {x_kv.shape}")
    S = x_kv.shape[1]
    weights = {name: as_float64(name, w) for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v), ("w_o", w_o))}
    for name in ("w_q", "w_k", "w_v", "w_o"):
        if weights[name].ndim != 2:
            raise ValueError(f"{name}: expected a 2-D weight matrix, got shape {weights[name].shape}")
    width_qk = weights["w_q"].shape[1]
    width_v = weights["w_v"].shape[1]
    check_shape("w_q", weights["w_q"], (d_model, width_qk), "(d_model, num_heads * d_k)")
    check_shape("w_k", weights["w_k"], (d_model, width_qk), "(d_model, num_heads * d_k) like w_q")
    check_shape("w_v", weights["w_v"], (d_model, width_v), "(d_model, num_heads * d_v)")
    check_shape("w_o", weights["w_o"], (width_v, d_model), "(num_heads * d_v, d_model)")
    heads = check_num_heads(num_heads, {"w_q": width_qk, "w_v": width_v})
    biases = {}
    for name, bias, width in (("b_q", b_q, width_qk), ("b_k", b_k, width_qk), ("b_v", b_v, width_v),
                              ("b_o", b_o, d_model)):
        if bias is not None:
            biases[name] = as_float64(name, bias)
            check_shape(name, biases[name], (width,))
    mask = None
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        if mask.ndim == 2:
            mask = mask[None]  # (1, L, S)
        if mask.ndim != 3 or mask.shape[1:] != (L, S) or mask.shape[0] not in (1, B):
            raise ValueError(f"attn_mask: expected shape ({B}, {L}, {S}) = (B, L, S), (1, {L}, {S}) or "
                             f"({L}, {S}), got {np.shape(attn_mask)}")
        mask = mask[:, None]  # (B or 1, 1, L, S): the same mask for every head
    return _Checked(x_q, x_kv, weights, biases, heads, mask, unbatched)


def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """``(B, n, h*d) -> (B, h, n, d)``: head ``i`` takes columns ``i*d:(i+1)*d`` (clause ``mha.split``)."""
    B, n, width = x.shape
    return x.reshape(B, n, num_heads, width // num_heads).transpose(0, 2, 1, 3)  # (B, h, n, d)


def concat_heads(x: np.ndarray) -> np.ndarray:
    """``(B, h, n, d) -> (B, n, h*d)``: heads side by side in order (clause ``mha.concat``)."""
    B, h, n, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, n, h * d)  # (B, n, h*d)


def multi_head_attention(x_q: Any, x_kv: Any, w_q: Any, w_k: Any, w_v: Any, w_o: Any, b_q: Any = None,
                         b_k: Any = None, b_v: Any = None, b_o: Any = None, *, num_heads: int, attn_mask: Any = None,
                         is_causal: bool = False) -> np.ndarray:
    """Multi-head attention ``Concat(head_1..head_h) W_O + b_O`` in float64, ``(B, L, d_model)``.

    - ``Q = x_q w_q + b_q``, ``K = x_kv w_k + b_k``, ``V = x_kv w_v + b_v``
      (clauses ``projection.query``, ``projection.key``, ``projection.value``);
    - head ``i`` takes columns ``i*d_k:(i+1)*d_k`` of Q and K and ``i*d_v:(i+1)*d_v``
      of V (clause ``mha.split``), with ``d_k = w_q.shape[1] / num_heads``;
    - ``head_i = softmax(Q_i K_i^T / sqrt(d_k) + mask) V_i``, scaled by the per-head
      ``d_k``, not ``d_model`` (clause ``mha.head``, via :func:`scaled_dot_product_attention`);
    - the heads are concatenated in order (clause ``mha.concat``) and projected:
      ``O = Concat w_o + b_o`` (clause ``mha.output-projection``).

    Shapes: ``x_q (B, L, d_model)``, ``x_kv (B, S, d_model)`` (or both unbatched,
    ``(L, d_model)`` and ``(S, d_model)``); ``w_q, w_k (d_model, h*d_k)``,
    ``w_v (d_model, h*d_v)``, ``w_o (h*d_v, d_model)``; biases 1-D of matching
    width, None for no bias. ``attn_mask``: bool (True = takes part) or floating
    (additive), ``(B, L, S)``, ``(1, L, S)`` or ``(L, S)``, the same for every head;
    ``is_causal`` adds the top-left causal rule.
    """
    c = check_mha_inputs(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, num_heads, attn_mask, is_causal)
    query = _project(c.x_q, c.weights["w_q"], c.biases.get("b_q"))  # (B, L, h*d_k)
    key = _project(c.x_kv, c.weights["w_k"], c.biases.get("b_k"))  # (B, S, h*d_k)
    value = _project(c.x_kv, c.weights["w_v"], c.biases.get("b_v"))  # (B, S, h*d_v)
    heads = scaled_dot_product_attention(
        split_heads(query, c.num_heads),  # (B, h, L, d_k)
        split_heads(key, c.num_heads),  # (B, h, S, d_k)
        split_heads(value, c.num_heads),  # (B, h, S, d_v)
        attn_mask=c.attn_mask, is_causal=is_causal,
    )  # (B, h, L, d_v); scale None = 1/sqrt(d_k) of each head
    output = _project(concat_heads(heads), c.weights["w_o"], c.biases.get("b_o"))  # (B, L, d_model)
    return output[0] if c.unbatched else output


def _project(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x weight + bias`` (clauses ``projection.query``, ``projection.key``, ``projection.value``,
    ``mha.output-projection``)."""
    y = x @ weight
    return y if bias is None else y + bias
