"""The ``sdpa`` kind: ``fn(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None)``,
the contract of ``torch.nn.functional.scaled_dot_product_attention`` on arrays, and its variants.

Its home: the case (:mod:`.case`), the strategy (:mod:`.strategy`), the call (:mod:`.call`), the
bound (:mod:`.bound`) and the checks, those judged against the reference (:mod:`.accuracy`) and the
properties (:mod:`.properties`).
"""

from __future__ import annotations

from ..base import Kind
from .call import arrays, call, expectation, output
from .case import MASKS, VALUES, SdpaCase, SdpaInputs
from .strategy import cases, sdpa_cases

KIND = Kind(
    name="sdpa", case=SdpaCase, output_layout="(..., L, Ev)", leading="query", inputs=lambda case: case.build(),
    arrays=arrays, call=call, output=output, expectation=expectation,
    general=cases(masks=MASKS, causal=(False, True), scales=True, values=VALUES),
    shared=("attention.shape", "attention.dtype", "impl.determinism", "impl.inputs-unmodified",
            "impl.strided-inputs"),
    conventions=("masked_rows", "causal_alignment"),
)

__all__ = ["KIND", "SdpaCase", "SdpaInputs", "cases", "sdpa_cases"]
