"""Departures that ``sdpa`` and ``mha`` share: the causal rule, the bool and float masks, the precision inside.

Each takes the inputs of either kind (both have ``attn_mask``, ``is_causal`` and ``replace``) and a judging whose
``predict(inputs, precision=...)`` is the kind's reference and bound on those inputs; each catalogue registers the
ones it lists. Clauses ``mask.causal.top-left``, ``mask.bool``, ``mask.additive``, ``attention.accuracy``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tolerance import Precision
from .entry import Prediction

HALF = ("float16", "bfloat16")


def _bool_mask(inputs: Any) -> np.ndarray | None:
    mask = inputs.attn_mask
    return mask if mask is not None and mask.dtype == np.bool_ else None


def _float_mask(inputs: Any) -> np.ndarray | None:
    mask = inputs.attn_mask
    return mask if mask is not None and mask.dtype != np.bool_ else None


def causal_ignored(inputs: Any, judging: Any) -> Prediction | None:
    """``is_causal=True`` computes attention over every key: the causal rule ``j <= i + o`` never applied."""
    return judging.predict(inputs.replace(is_causal=False)) if inputs.is_causal else None


def causal_dropped_with_mask(inputs: Any, judging: Any) -> Prediction | None:
    """With an ``attn_mask`` given, ``is_causal=True`` is lost: only the mask applies (without one, the rule holds)."""
    if not inputs.is_causal or inputs.attn_mask is None:
        return None
    return judging.predict(inputs.replace(is_causal=False))


def bool_mask_inverted(inputs: Any, judging: Any) -> Prediction | None:
    """A bool mask read as True = ignore (``~m`` kept): torch.nn.MultiheadAttention's polarity (clause
    ``mask.bool``)."""
    mask = _bool_mask(inputs)
    return None if mask is None else judging.predict(inputs.replace(attn_mask=~mask))


def bool_mask_ignored(inputs: Any, judging: Any) -> Prediction | None:
    """A bool mask dropped: every key kept (a mask of True of the same shape, so the batch dims still broadcast)."""
    mask = _bool_mask(inputs)
    return None if mask is None else judging.predict(inputs.replace(attn_mask=np.ones_like(mask)))


def float_mask_ignored(inputs: Any, judging: Any) -> Prediction | None:
    """A float mask dropped: ``M = 0`` of the same shape instead of ``x + M`` (clause ``mask.additive``)."""
    mask = _float_mask(inputs)
    return None if mask is None else judging.predict(inputs.replace(attn_mask=np.zeros_like(mask)))


def float_mask_as_keep(inputs: Any, judging: Any) -> Prediction | None:
    """A float mask read as a keep-mask: key j kept where ``M_ij != 0`` (``-inf`` included), nothing added."""
    mask = _float_mask(inputs)
    return None if mask is None else judging.predict(inputs.replace(attn_mask=mask != 0))


def float32_inside(inputs: Any, judging: Any) -> Prediction | None:
    """Float64 inputs computed in float32 inside: the reference within the bound of float32 arithmetic
    (``u_s = u_a = 2^-24``), the inputs' rounding to float32 included (clause ``attention.accuracy``)."""
    if judging.precision.dtype != "float64":
        return None
    return judging.predict(inputs, precision=Precision.of("float32"))


def half_accumulation(inputs: Any, judging: Any) -> Prediction | None:
    """Float16 or bfloat16 inputs whose sums (dot products, softmax sums) accumulate in the storage dtype: the bound of
    ``u_a = u_s`` (``accumulation="dtype"``) where float32 sums were declared."""
    dtype = judging.precision.dtype
    if dtype not in HALF or judging.accumulation == "dtype":
        return None
    return judging.predict(inputs, precision=Precision.of(dtype, "dtype"))


# name, description, formula: registered by the catalogue of each kind, in this order.
SHARED = (
    ("causal mask ignored", "is_causal=True attends to every key: the causal rule is never applied", causal_ignored),
    ("causal dropped when attn_mask is given", "is_causal=True is lost when an attn_mask is also given: only the mask "
     "applies", causal_dropped_with_mask),
    ("bool mask inverted", "a bool mask read as True = ignore (torch.nn.MultiheadAttention's polarity)",
     bool_mask_inverted),
    ("bool mask ignored", "a bool attn_mask is dropped: every key takes part", bool_mask_ignored),
    ("float mask ignored", "a float attn_mask is dropped instead of added to the scores", float_mask_ignored),
    ("float mask read as a keep-mask", "a float attn_mask read as a keep-mask (nonzero keeps the key) instead of "
     "added to the scores", float_mask_as_keep),
    ("float32 inside", "float64 inputs computed in float32 inside (the scores or the softmax), returned as float64",
     float32_inside),
    ("half-precision accumulation", "float16/bfloat16 sums (dot products, softmax sums) accumulated in the storage "
     "dtype instead of float32", half_accumulation),
)


def register(entries: Any, leave_out: tuple[str, ...] = ()) -> None:
    """Add the shared departures, but those named in ``leave_out``, to a catalogue's :class:`~.entry.Entries`."""
    for name, description, predict in SHARED:
        if name not in leave_out:
            entries.departure(name, description)(predict)
