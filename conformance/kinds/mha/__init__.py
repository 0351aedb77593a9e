"""The ``mha`` kind: ``fn(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads,
attn_mask=None, is_causal=False)``, multi-head attention in the seed's notation (Q = X W_Q).

Its home: the case (:mod:`.case`), the strategy (:mod:`.strategy`), the call (:mod:`.call`), the
bound (:mod:`.bound`) and the checks (:mod:`.checks`).
"""

from __future__ import annotations

from ..base import Kind
from .call import arrays, call, expectation, output
from .case import MhaCase, MhaInputs
from .checks import general

KIND = Kind(
    name="mha", case=MhaCase, output_layout="(B, L, d_model)", leading="x_q", inputs=lambda case: case.build(),
    arrays=arrays, call=call, output=output, expectation=expectation, general=general,
    shared=("attention.shape", "attention.dtype", "impl.determinism", "impl.inputs-unmodified"),
    conventions=("masked_rows", "causal_alignment"),
)

__all__ = ["KIND", "MhaCase", "MhaInputs"]
