"""The keys a drawn ``sdpa`` case keeps for each query row, written out from its mask and causal flag (for the
tests of the strategies: every row keeps a key unless the case asks for empty rows)."""

from __future__ import annotations

import numpy as np

from kqv.reference import causal_mask


def keeps(case, inputs=None) -> np.ndarray:
    """``(..., L, S)`` bool: True where the query row keeps the key."""
    inputs = inputs if inputs is not None else case.build()
    keep = np.ones((case.L, case.S), dtype=bool)
    if inputs.attn_mask is not None:
        mask = inputs.attn_mask
        keep = keep & (mask if mask.dtype == np.bool_ else mask.astype(np.float64) > -np.inf)
    if case.is_causal:
        keep = keep & causal_mask(case.L, case.S, case.alignment)
    return keep
