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

from .stages import above_diagonal
from .validation import CAUSAL_ALIGNMENTS, check_choice, check_count


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
    return ~above_diagonal(L, S, offset)  # (L, S): j <= i + offset, the keep-mask of stage 3
