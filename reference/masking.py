"""Masks: which keys take part in each query's softmax, and what is added to the scores.

Three sources of masking combine into one keep-mask (a key takes part only if
every source allows it):

- a bool ``attn_mask``, True where the key takes part (clause ``mask.bool``);
- a floating ``attn_mask``, added to the scores; an entry of ``-inf`` removes the
  key (clause ``mask.additive``);
- ``is_causal``: query ``i`` sees key ``j`` only if ``j <= i`` (clause
  ``mask.causal.top-left``) or ``j <= i + S - L`` (clause
  ``mask.causal.bottom-right``).

A key outside the keep-mask gets weight exactly 0 (clause ``mask.zero-weight``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .validation import CAUSAL_ALIGNMENTS, as_mask, check_bool, check_choice, check_count


def causal_mask(L: int, S: int, alignment: str = "top-left") -> np.ndarray:
    """Bool keep-mask ``(L, S)`` of causal attention: True where query ``i`` may see key ``j``.

    ``"top-left"`` (clause ``mask.causal.top-left``): ``j <= i``.
    ``"bottom-right"`` (clause ``mask.causal.bottom-right``): ``j <= i + S - L``, so the
    last query sees every key; with ``L > S`` the first ``L - S`` queries see none.
    """
    L = check_count("L", L, 0)
    S = check_count("S", S, 0)
    alignment = check_choice("alignment", alignment, CAUSAL_ALIGNMENTS)
    offset = 0 if alignment == "top-left" else S - L
    i = np.arange(L)[:, None]  # (L, 1)
    j = np.arange(S)[None, :]  # (1, S)
    return j <= i + offset  # (L, S)


class Masks(NamedTuple):
    """The combined masking of one attention call, both broadcastable to ``(..., L, S)``.

    ``keep``: bool, True where the key takes part (every source allows it).
    ``additive``: float64 to add to the scores at kept positions (``-inf`` entries
    of a floating mask replaced by 0, since those keys are not kept), or None.
    """

    keep: np.ndarray
    additive: np.ndarray | None


def combine_masks(attn_mask: Any, is_causal: Any, target: tuple[int, ...],
                  causal_alignment: str = "top-left") -> Masks:
    """Combine ``attn_mask`` and ``is_causal`` into :class:`Masks` for scores of shape ``target = (..., L, S)``.

    Clauses ``mask.bool``, ``mask.additive``, ``mask.causal.top-left`` and
    ``mask.causal.bottom-right``; a key takes part only if both the mask and the
    causal rule allow it.
    """
    is_causal = check_bool("is_causal", is_causal)
    causal_alignment = check_choice("causal_alignment", causal_alignment, CAUSAL_ALIGNMENTS)
    L, S = target[-2:]
    keep = np.ones((L, S), dtype=bool)  # (L, S)
    additive = None
    if attn_mask is not None:
        mask = as_mask(attn_mask, target)
        if mask.dtype == np.bool_:
            keep = keep & mask  # (..., L, S)
        else:
            keep = keep & (mask != -np.inf)  # (..., L, S)
            additive = np.where(mask == -np.inf, 0.0, mask)
    if is_causal:
        keep = keep & causal_mask(L, S, causal_alignment)
    return Masks(keep=keep, additive=additive)
