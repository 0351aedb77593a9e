"""Scaled dot-product attention in float64: ``softmax(Q K^T * scale + mask) V``.

The contract is that of ``torch.nn.functional.scaled_dot_product_attention`` on
NumPy arrays (clause ``attention.sdpa``), with two reference-only options:
``causal_alignment`` and ``masked_rows``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .blocked import blocked_attention
from .masking import combine_masks
from .softmax import masked_softmax
from .validation import MASKED_ROWS, as_float64, check_attention_shapes, check_choice, check_dropout, check_scale


def _weights(query: Any, key: Any, attn_mask: Any, is_causal: Any, scale: Any, causal_alignment: str,
             masked_rows: str, value: Any = None):
    """Validate the inputs and return ``(P, empty, value)``; ``P`` is ``(..., L, S)``, ``empty`` ``(..., L, 1)``."""
    check_choice("masked_rows", masked_rows, MASKED_ROWS)
    query = as_float64("query", query)
    key = as_float64("key", key)
    if value is None:
        value = np.zeros(key.shape[:-1] + (0,))  # (..., S, 0): attention_weights has no value
    else:
        value = as_float64("value", value)
    batch = check_attention_shapes(query, key, value)
    L, e = query.shape[-2:]
    S = key.shape[-2]
    if scale is None:
        if e == 0:
            raise ValueError("scale: the default 1/sqrt(E) is undefined for E=0 (query shape "
                             f"{query.shape}); pass an explicit scale")
        scale = 1.0 / np.sqrt(e)  # clause scores.scale.default
    else:
        scale = check_scale(scale)  # clause scores.scale.explicit
    masks = combine_masks(attn_mask, is_causal, batch + (L, S), causal_alignment)
    scores = (query @ np.swapaxes(key, -1, -2)) * scale  # (..., L, S), clause scores.dot-product
    scores = np.broadcast_to(scores, batch + (L, S))  # value's batch dims too: (..., L, S)
    if masks.additive is not None:
        scores = scores + masks.additive  # clause mask.additive
    weights, empty = masked_softmax(scores, masks.keep, axis=-1)  # clauses softmax.stable, mask.zero-weight
    if masked_rows == "nan":
        weights = np.where(empty, np.nan, weights)
    elif masked_rows == "uniform" and S > 0:
        weights = np.where(empty, 1.0 / S, weights)
    return weights, empty, value


def attention_weights(query: Any, key: Any, attn_mask: Any = None, is_causal: bool = False, scale: Any = None, *,
                      causal_alignment: str = "top-left", masked_rows: str = "zeros") -> np.ndarray:
    """The attention weights ``P = softmax(Q K^T * scale + mask)``, float64 ``(..., L, S)``.

    ``P_ij = exp(x_ij - m_i) / sum_{k kept} exp(x_ik - m_i)`` for kept keys and exactly
    0 for masked ones, where ``x_ij = scale * sum_e q_ie k_je (+ attn_mask_ij)`` and
    ``m_i`` is the row max over kept keys. Clauses ``scores.dot-product``,
    ``scores.scale.default``, ``scores.scale.explicit``, ``mask.bool``,
    ``mask.additive``, ``mask.causal.top-left``, ``mask.causal.bottom-right``,
    ``softmax.definition``, ``softmax.stable``, ``softmax.rows-sum-to-one``,
    ``mask.zero-weight``. A row whose every key is masked (clause
    ``mask.fully-masked-row``) is 0 (``masked_rows="zeros"``), NaN (``"nan"``) or
    ``1/S`` (``"uniform"``). Arguments are those of :func:`scaled_dot_product_attention`.
    """
    weights, _, _ = _weights(query, key, attn_mask, is_causal, scale, causal_alignment, masked_rows)
    return weights


METHODS = ("auto", "dense", "blocked")
# "auto" takes the blocked form from this many scores (batch * L * S) on: below it the dense form is
# as fast, above it the blocked form is faster and its memory stays O(L * E) (measured, README).
BLOCKED_FROM = 2**19


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: Any = None, *, causal_alignment: str = "top-left",
                                 masked_rows: str = "zeros", method: str = "auto",
                                 block_size: tuple[int, int] | None = None) -> np.ndarray:
    """Attention ``O = softmax(Q K^T * scale + mask) V`` in float64 (clause ``attention.sdpa``).

    ``O_ic = sum_j P_ij v_jc`` (clause ``output.weighted-sum``) with ``P`` from
    :func:`attention_weights`.

    Shapes (clause ``attention.shape``): ``query (..., L, E)``, ``key (..., S, E)``,
    ``value (..., S, Ev)`` -> ``(..., L, Ev)``; the batch dims ``...`` (any number,
    none included) broadcast among the three.

    Dtype: any floating input (float16, bfloat16, float32, float64) is computed
    in float64 and the result is float64, whatever the input dtype; integer, bool
    and complex inputs raise :class:`TypeError`. (Clause ``attention.dtype`` asks
    an implementation under test for the query's dtype; the reference is the
    float64 yardstick, and the conformance layer casts it where it compares.)

    ``attn_mask``: bool (True = the key takes part, clause ``mask.bool``) or
    floating (added to the scores, ``-inf`` allowed, clause ``mask.additive``),
    broadcastable to ``(..., L, S)``.

    ``is_causal``: query ``i`` sees key ``j`` only if ``j <= i`` (``causal_alignment=
    "top-left"``, clause ``mask.causal.top-left``, torch's rule) or
    ``j <= i + S - L`` (``"bottom-right"``, clause ``mask.causal.bottom-right``).
    Combined with ``attn_mask``, a key takes part only if both allow it.

    ``scale``: None gives ``1/sqrt(E)`` (clause ``scores.scale.default``); an
    explicit finite value is used as is (clause ``scores.scale.explicit``).

    ``dropout_p`` must be 0: the reference is deterministic.

    ``masked_rows``: the output of a row whose every key is masked (clause
    ``mask.fully-masked-row``): ``"zeros"``, ``"nan"``, or ``"uniform"`` (the mean
    of ``value`` over all S keys). With ``S = 0`` every row is such a row; the
    empty sum makes it 0 except under ``"nan"``.

    The softmax subtracts the row max over kept keys (clause ``softmax.stable``),
    so finite scores of any magnitude neither overflow nor give ``0/0`` on rows
    that keep a key, and masked keys get weight exactly 0 (clause
    ``mask.zero-weight``).

    ``method``: ``"dense"`` forms the ``(..., L, S)`` weights; ``"blocked"``
    (:func:`kqv.reference.blocked.blocked_attention`) walks blocks of keys with an
    online softmax (clause ``softmax.online``) in memory ``O(L * E)``, on every
    core, with ``block_size = (query rows, keys)``; ``"auto"`` (the default) takes
    the blocked form from ``2**19`` scores (batch x L x S) on. The two agree to
    float64 rounding.
    """
    check_dropout(dropout_p)
    method = check_choice("method", method, METHODS)
    if method == "auto":
        shapes = [np.shape(a) for a in (query, key, value)]
        if all(len(shape) >= 2 for shape in shapes):
            try:
                batch = np.broadcast_shapes(*(shape[:-2] for shape in shapes))
            except ValueError:
                batch = None  # the dense form reports the mismatch
            scores = None if batch is None else int(np.prod(batch, dtype=np.int64)) * shapes[0][-2] * shapes[1][-2]
            method = "blocked" if scores is not None and scores >= BLOCKED_FROM else "dense"
        else:
            method = "dense"
    if method == "blocked":
        return blocked_attention(query, key, value, attn_mask, is_causal, scale, causal_alignment=causal_alignment,
                                 masked_rows=masked_rows, block_size=block_size)
    if block_size is not None:
        raise ValueError("block_size: only the blocked method takes a block size (method='blocked')")
    weights, empty, value = _weights(query, key, attn_mask, is_causal, scale, causal_alignment, masked_rows, value)
    output = weights @ value  # (..., L, Ev), clause output.weighted-sum
    if masked_rows == "nan":
        output = np.where(empty, np.nan, output)  # also when S = 0, where the product is an empty sum
    return output
