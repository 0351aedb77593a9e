"""The analytic backward of multi-head attention in float64: the gradient of every input from ``dY`` (clauses
``mha.gradient.inputs``, ``mha.gradient.weights``).

With ``Q = X_q W_Q + b_Q``, ``K = X_kv W_K + b_K``, ``V = X_kv W_V + b_V``, the heads ``H = Concat(head_1..head_h)``
and the output ``Y = H W_O + b_O`` (:func:`kqv.reference.multi_head_attention`), the upstream gradient ``dY`` gives,
by the chain rule through each product ``y = x W + b`` (``dx = dy W^T``, ``dW = x^T dy``, ``db = sum_rows dy``):

- ``dW_O = H^T dY``, ``db_O = sum_rows dY`` and ``dH = dY W_O^T``;
- ``(dQ_i, dK_i, dV_i)`` of each head from its block of ``dH`` by the sdpa backward
  (:func:`kqv.reference.scaled_dot_product_attention_backward`, clauses ``gradient.*``), concatenated in head order;
- ``dX_q = dQ W_Q^T``, ``dX_kv = dK W_K^T + dV W_V^T``, ``dW_Q = X_q^T dQ``, ``dW_K = X_kv^T dK``,
  ``dW_V = X_kv^T dV`` and the biases' gradients the row sums of ``dQ``, ``dK``, ``dV``.

The sums over rows run over the batch too. ``dX_q`` and ``dX_kv`` are the partial derivatives by each argument,
also when ``x_kv`` is ``x_q`` (self-attention): the gradient of the shared input is then their sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .backward import scaled_dot_product_attention_backward
from .mha import _project, check_mha_inputs, concat_heads, split_heads
from .sdpa import scaled_dot_product_attention
from .validation import check_grad_output


@dataclass(frozen=True)
class MhaGradients:
    """The gradients of a loss with respect to each input of :func:`kqv.reference.multi_head_attention`, given
    ``dY``: float64, each of its input's shape; a bias not given has None."""

    x_q: np.ndarray  # (B, L, d_model) or (L, d_model)
    x_kv: np.ndarray  # (B, S, d_model) or (S, d_model)
    w_q: np.ndarray  # (d_model, h*d_k)
    w_k: np.ndarray  # (d_model, h*d_k)
    w_v: np.ndarray  # (d_model, h*d_v)
    w_o: np.ndarray  # (h*d_v, d_model)
    b_q: np.ndarray | None = None  # (h*d_k,)
    b_k: np.ndarray | None = None  # (h*d_k,)
    b_v: np.ndarray | None = None  # (h*d_v,)
    b_o: np.ndarray | None = None  # (d_model,)


def _weight(x: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """``dW = x^T dy`` summed over the batch: ``x (B, n, a)``, ``dy (B, n, b)`` -> ``(a, b)``."""
    return np.einsum("bna,bnc->ac", x, gradient)


def _bias(gradient: np.ndarray, given: Any) -> np.ndarray | None:
    """``db = sum_rows dy`` over the batch and the rows, ``(B, n, b)`` -> ``(b,)``, None for a bias not given."""
    return None if given is None else gradient.sum(axis=(0, 1))


def multi_head_attention_backward(x_q: Any, x_kv: Any, w_q: Any, w_k: Any, w_v: Any, w_o: Any, b_q: Any = None,
                                  b_k: Any = None, b_v: Any = None, b_o: Any = None, *, grad_output: Any,
                                  num_heads: int, attn_mask: Any = None, is_causal: bool = False,
                                  masked_rows: str = "zeros", causal_alignment: str = "top-left") -> MhaGradients:
    """The gradients of ``Y = Concat(head_1..head_h) W_O + b_O`` (:func:`kqv.reference.multi_head_attention`) in
    float64 given ``grad_output = dY``, of the output's shape; see the module docstring for the formulas (clauses
    ``mha.gradient.inputs``, ``mha.gradient.weights``, through ``gradient.*`` in each head).

    Arguments are those of :func:`kqv.reference.multi_head_attention`; ``masked_rows`` and ``causal_alignment`` are
    passed to the heads' attention (the convention for rows that keep no key: under ``"zeros"`` such a row is the
    constant 0 and gets no gradient; under ``"nan"`` its ``dQ`` row is NaN, and so are that row of ``dX_q`` and
    every entry of ``dW_Q``, ``db_Q`` and, the output row being NaN, ``dW_O``).
    """
    c = check_mha_inputs(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, num_heads, attn_mask, is_causal)
    h = c.num_heads
    B, L, d_model = c.x_q.shape
    shape = (L, d_model) if c.unbatched else (B, L, d_model)
    d_output = check_grad_output(grad_output, shape).reshape(B, L, d_model)  # (B, L, d_model)
    query = split_heads(_project(c.x_q, c.weights["w_q"], c.biases.get("b_q")), h)  # (B, h, L, d_k)
    key = split_heads(_project(c.x_kv, c.weights["w_k"], c.biases.get("b_k")), h)  # (B, h, S, d_k)
    value = split_heads(_project(c.x_kv, c.weights["w_v"], c.biases.get("b_v")), h)  # (B, h, S, d_v)
    options = dict(attn_mask=c.attn_mask, is_causal=is_causal, masked_rows=masked_rows,
                   causal_alignment=causal_alignment)
    heads = concat_heads(scaled_dot_product_attention(query, key, value, **options))  # (B, L, h*d_v)
    d_heads = split_heads(d_output @ c.weights["w_o"].T, h)  # (B, h, L, d_v): dH = dY W_O^T, split
    inner = scaled_dot_product_attention_backward(query, key, value, d_heads, **options)
    d_query, d_key, d_value = (concat_heads(g) for g in inner[:3])  # (B, L, h*d_k), (B, S, h*d_k), (B, S, h*d_v)
    d_x_q = d_query @ c.weights["w_q"].T  # (B, L, d_model)
    d_x_kv = d_key @ c.weights["w_k"].T + d_value @ c.weights["w_v"].T  # (B, S, d_model)
    if c.unbatched:
        d_x_q, d_x_kv = d_x_q[0], d_x_kv[0]  # (L, d_model), (S, d_model)
    return MhaGradients(
        x_q=d_x_q, x_kv=d_x_kv, w_q=_weight(c.x_q, d_query), w_k=_weight(c.x_kv, d_key),
        w_v=_weight(c.x_kv, d_value), w_o=_weight(heads, d_output), b_q=_bias(d_query, b_q), b_k=_bias(d_key, b_k),
        b_v=_bias(d_value, b_v), b_o=_bias(d_output, b_o),
    )
