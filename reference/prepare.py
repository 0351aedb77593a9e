"""One validated call of scaled dot-product attention: what every form of the reference starts from.

:func:`prepare` checks the arguments of ``scaled_dot_product_attention`` once (each error names the
argument, what it got and what was expected), maps the key and value heads to the query heads
(stage 0, clause ``gqa.head-mapping``) and returns a :class:`Prepared` call; the dense form, the
blocked form, the mpmath oracle and the tolerance model of ``kqv.conformance`` all take it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arithmetic import to_mpf
from .stages import add_biases, alibi_bias, drop_beyond, drop_causal, drop_keys, drop_window, map_heads
from .validation import (CAUSAL_ALIGNMENTS, MASKED_ROWS, as_float64, as_mask, check_alibi_slopes,
                         check_attention_shapes, check_bool, check_choice, check_kv_lengths, check_min_ndim,
                         check_positive_real, check_scale, check_sinks, check_window)


@dataclass(frozen=True)
class Prepared:
    """A validated call; the arrays are float64 (or, after :meth:`in_mpmath`, mpmath numbers).

    ``query (..., L, E)``, ``key (..., S, E)`` and ``value (..., S, Ev)`` as given, but with the key
    and value heads already mapped to the query heads (grouped-query attention); ``batch`` is the
    broadcast of their batch dims; ``mask`` the bool keep-mask or float additive mask, broadcastable
    to ``(*batch, L, S)``; ``causal_offset`` None without ``is_causal``, else key ``j`` is kept for
    query ``i`` iff ``j <= i + causal_offset``; ``window`` None, or ``(left, right)``: key ``j`` is kept
    for query ``i`` iff ``i + offset - left <= j <= i + offset + right`` (a side None is unbounded),
    ``offset`` being the alignment offset (0 top-left, ``S - L`` bottom-right); ``softcap`` None or the
    cap; ``alibi_slopes`` None or the ALiBi slopes ``(H_q,)`` or ``(B, H_q)``, lined up with ``batch`` from
    the right. With ``kv_lengths`` the offset differs per batch entry, so the key lengths, the causal rule,
    the window and the ALiBi bias are folded into ``mask`` (:func:`fold_lengths`) and ``causal_offset``,
    ``window`` and ``alibi_slopes`` are None. ``sinks`` None or the sink logits ``(H_q,)`` or ``(B, H_q)``,
    lined up with ``batch`` from the right; with them ``masked_rows`` is ``"zeros"`` whatever was asked
    (clause ``sinks.empty-row``: a row that keeps no key is 0).
    """

    query: np.ndarray
    key: np.ndarray
    value: np.ndarray
    batch: tuple[int, ...]
    scale: Any  # the float64 scale (exactly 1/sqrt(E) in the oracle's arithmetic when default_scale)
    default_scale: bool  # scale=None was given: 1/sqrt(E)
    mask: np.ndarray | None
    causal_offset: int | None
    masked_rows: str
    window: tuple[int | None, int | None] | None = None
    offset: int = 0  # the alignment offset o of the causal rule and the window: 0 top-left, S - L bottom-right
    softcap: Any = None  # the cap c of softcap.formula, or None
    alibi_slopes: np.ndarray | None = None  # the slopes m_h of alibi.formula, (H_q,) or (B, H_q), or None
    kv_lengths: np.ndarray | None = None  # int (B,): the valid keys of each batch entry, already folded into mask
    sinks: np.ndarray | None = None  # the sink logits of sinks.formula, (H_q,) or (B, H_q), or None

    @property
    def L(self) -> int:  # noqa: N802 - the paper's name
        return self.query.shape[-2]

    @property
    def S(self) -> int:  # noqa: N802
        return self.key.shape[-2]

    @property
    def E(self) -> int:  # noqa: N802
        return self.query.shape[-1]

    @property
    def Ev(self) -> int:  # noqa: N802
        return self.value.shape[-1]

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the scores and weights, ``(*batch, L, S)``."""
        return self.batch + (self.L, self.S)

    def kept(self) -> np.ndarray:
        """Bool ``(*batch, L, S)``: True where the key takes part (stages 2 and 3 run on zero scores)."""
        x = np.zeros(self.shape)
        add_biases(x, self.mask)
        drop_keys(x, self.mask)
        if self.causal_offset is not None:
            drop_causal(x, self.causal_offset)
        if self.window is not None:
            drop_window(x, self.offset, self.window)
        return x != -np.inf

    def biases(self) -> np.ndarray:
        """Float64 ``(*batch, L, S)``: the additive terms of the scores, the ALiBi bias ``-m_h |i + o - j|``
        (clause ``alibi.float-mask``) plus the float mask where it is finite; 0 without either."""
        total = np.zeros(self.shape)
        if self.alibi_slopes is not None:
            total += alibi_bias(self.alibi_slopes, self.L, self.S, self.offset)
        if self.mask is not None and self.mask.dtype != np.bool_:
            mask = np.broadcast_to(np.asarray(self.mask, dtype=np.float64), self.shape)
            total += np.where(mask == -np.inf, 0.0, mask)
        return total

    def row_sinks(self) -> np.ndarray | None:
        """The sink of each query row, ``(..., H_q, 1, 1)``, broadcastable to the scores' rows; None without sinks."""
        return None if self.sinks is None else self.sinks[..., None, None]

    def in_mpmath(self) -> "Prepared":
        """The same call on object arrays of mpmath numbers, with the exact ``1/sqrt(E)`` as the default scale.

        Call it inside :func:`mpmath.workdps`: the scale is computed at the working precision.
        """
        import mpmath

        mask = self.mask if self.mask is None or self.mask.dtype == np.bool_ else to_mpf(self.mask)
        scale = 1 / mpmath.sqrt(self.E) if self.default_scale else mpmath.mpf(self.scale)
        cap = None if self.softcap is None else mpmath.mpf(self.softcap)
        slopes = None if self.alibi_slopes is None else to_mpf(self.alibi_slopes)
        sinks = None if self.sinks is None else to_mpf(self.sinks)
        return dataclasses.replace(self, query=to_mpf(self.query), key=to_mpf(self.key), value=to_mpf(self.value),
                                   scale=scale, mask=mask, softcap=cap, alibi_slopes=slopes, sinks=sinks)


def _check_heads(query: np.ndarray, key: np.ndarray, value: np.ndarray) -> None:
    """The head axis (-3) that ``enable_gqa`` needs, and ``H_q`` a multiple of ``H_kv`` (clause ``gqa.head-mapping``)."""
    for name, array, layout in (("query", query, "(..., H_q, L, E)"), ("key", key, "(..., H_kv, S, E)"),
                                ("value", value, "(..., H_kv, S, Ev)")):
        if array.ndim < 3:
            raise ValueError(f"{name}: enable_gqa needs a head axis, shape {layout} with at least 3 dims; "
                             f"got shape {array.shape}")
    query_heads, kv_heads = query.shape[-3], key.shape[-3]
    if value.shape[-3] != kv_heads:
        raise ValueError(f"value: expected {kv_heads} heads on axis -3 like key (..., H_kv, S, Ev), got shape "
                         f"{value.shape} (key {key.shape})")
    if kv_heads == 0 or query_heads % kv_heads:
        raise ValueError(f"enable_gqa: the query heads H_q = {query_heads} (query {query.shape}) must be a multiple "
                         f"of the key/value heads H_kv = {kv_heads} (key {key.shape})")


def fold_lengths(mask: np.ndarray | None, shape: tuple[int, ...], lengths: np.ndarray, top_left: bool,
                 is_causal: bool, window: tuple[int | None, int | None] | None,
                 slopes: np.ndarray | None = None) -> np.ndarray:
    """Stages 2 and 3 with key lengths, ``shape = (*batch, L, S)``: batch entry ``b`` (axis -4) keeps keys ``j < n_b``
    (clause ``lengths.index-rule``), and its causal rule, window and ALiBi bias use the offset ``o_b = n_b - L``
    bottom-right, 0 top-left (clause ``lengths.offset``). Combined with ``mask``: without a bias, a bool mask and-ed
    (a bool mask of its own without one); with a float mask or ALiBi slopes, a float mask with ``-inf`` at the keys
    dropped."""
    L, S = shape[-2:]
    x = np.zeros(shape)  # (*batch, L, S): the biases, -inf where a key is dropped
    for b, length in enumerate(lengths):
        entry = x[..., b, :, :, :]  # (..., H, L, S): batch entry b
        offset = 0 if top_left else int(length) - L
        if slopes is not None:
            entry += alibi_bias(slopes if slopes.ndim == 1 else slopes[b % slopes.shape[0]], L, S, offset)  # (H, L, S)
        drop_beyond(entry, int(length))
        if is_causal:
            drop_causal(entry, offset)
        if window is not None:
            drop_window(entry, offset, window)
    if slopes is None and (mask is None or mask.dtype == np.bool_):
        kept = x == 0
        return kept if mask is None else np.broadcast_to(mask, shape) & kept
    if mask is not None and mask.dtype == np.bool_:
        return np.where(np.broadcast_to(mask, shape), x, -np.inf)
    return x if mask is None else np.broadcast_to(mask, shape) + x


def prepare(query: Any, key: Any, value: Any = None, attn_mask: Any = None, is_causal: Any = False,
            scale: Any = None, *, causal_alignment: str = "top-left", masked_rows: str = "zeros",
            enable_gqa: Any = False, window: Any = None, softcap: Any = None, alibi_slopes: Any = None,
            kv_lengths: Any = None, sinks: Any = None) -> Prepared:
    """Validate the arguments of :func:`kqv.reference.scaled_dot_product_attention` and return the :class:`Prepared` call.

    ``value`` None stands for a value of width 0 (:func:`kqv.reference.attention_weights` has none).
    """
    check_choice("masked_rows", masked_rows, MASKED_ROWS)
    query = as_float64("query", query)
    key = as_float64("key", key)
    value = np.zeros(key.shape[:-1] + (0,)) if value is None else as_float64("value", value)  # (..., S, 0)
    if check_bool("enable_gqa", enable_gqa):
        for name, array, layout in (("query", query, "(..., L, E)"), ("key", key, "(..., S, E)"),
                                    ("value", value, "(..., S, Ev)")):
            check_min_ndim(name, array, layout)
        _check_heads(query, key, value)
        key, value = map_heads(key, value, query.shape[-3])  # (..., H_q, S, E), (..., H_q, S, Ev)
    batch = check_attention_shapes(query, key, value)
    (L, E), S = query.shape[-2:], key.shape[-2]
    if scale is None:
        if E == 0:
            raise ValueError(f"scale: the default 1/sqrt(E) is undefined for E=0 (query shape {query.shape}); "
                             "pass an explicit scale")
        value_of_scale = 1.0 / np.sqrt(E)  # clause scores.scale.default
    else:
        value_of_scale = check_scale(scale)  # clause scores.scale.explicit
    is_causal = check_bool("is_causal", is_causal)
    causal_alignment = check_choice("causal_alignment", causal_alignment, CAUSAL_ALIGNMENTS)
    mask = None if attn_mask is None else as_mask(attn_mask, batch + (L, S))
    window = check_window(window)
    softcap = None if softcap is None else check_positive_real("softcap", softcap)  # clause softcap.formula
    slopes = None if alibi_slopes is None else check_alibi_slopes(alibi_slopes, batch)  # clause alibi.formula
    if sinks is not None:
        sinks = check_sinks(sinks, batch)  # clause sinks.formula
        masked_rows = "zeros"  # clause sinks.empty-row: the denominator exp(sink - m) > 0 leaves an empty row 0
    offset = 0 if causal_alignment == "top-left" else S - L
    if kv_lengths is not None:
        lengths = check_kv_lengths(kv_lengths, batch, S)
        mask = fold_lengths(mask, batch + (L, S), lengths, causal_alignment == "top-left", is_causal, window, slopes)
        return Prepared(query, key, value, batch, value_of_scale, scale is None, mask, None, masked_rows, None, 0,
                        softcap, kv_lengths=lengths, sinks=sinks)
    return Prepared(query, key, value, batch, value_of_scale, scale is None, mask, offset if is_causal else None,
                    masked_rows, window, offset, softcap, slopes, sinks=sinks)
