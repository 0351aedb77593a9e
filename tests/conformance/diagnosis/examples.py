"""For every departure of the catalogue, a broken implementation that commits it and a case that shows it.

``EXAMPLES[kind, name]`` is ``(broken function, the case)``; the function's ``declaration`` (from ``@breaks``) is the
backend's. The cases are small and non-degenerate: ``L != S``, ``Ev != E``, two batch entries.
"""

from __future__ import annotations

import dataclasses

from broken import alibi, gqa, mha, pe, realistic, sdpa, softcap, tiles, window
from kqv.conformance.kinds.mha.case import MhaCase
from kqv.conformance.kinds.pe.case import PeCase
from kqv.conformance.kinds.sdpa.case import SdpaCase

BASE = SdpaCase(dtype="float64", batch=(2,), L=5, S=7, E=4, Ev=3, seed=1)
CAUSAL = dataclasses.replace(BASE, is_causal=True)
BOOL = dataclasses.replace(BASE, mask="bool")
FLOAT = dataclasses.replace(BASE, mask="float")
HEADS = dataclasses.replace(BASE, batch=(2, 4))
MHA = MhaCase(dtype="float64", B=2, L=3, S=5, d_model=6, num_heads=2, d_k=3, d_v=2, seed=1)


def _sdpa(**changes) -> SdpaCase:
    return dataclasses.replace(BASE, **changes)


def _mha(**changes) -> MhaCase:
    return dataclasses.replace(MHA, **changes)


EXAMPLES = {
    ("sdpa", "no scale"): (sdpa.no_scale, BASE),
    ("sdpa", "scale 1/E"): (sdpa.scale_one_over_e, BASE),
    ("sdpa", "scale 1/sqrt(Ev)"): (sdpa.scale_value_width, BASE),
    ("sdpa", "explicit scale ignored"): (sdpa.explicit_scale_ignored, _sdpa(scale=0.7)),
    ("sdpa", "explicit scale times 1/sqrt(E)"): (sdpa.explicit_scale_multiplies, _sdpa(scale=0.7)),
    ("sdpa", "softmax over the queries"): (sdpa.softmax_over_queries, BASE),
    ("sdpa", "no max subtracted"): (sdpa.naive_exp, _sdpa(values="huge")),
    ("sdpa", "causal one key short"): (sdpa.causal_strict, CAUSAL),
    ("sdpa", "causal one key ahead"): (sdpa.causal_one_ahead, CAUSAL),
    ("sdpa", "causal aligned the other way"): (sdpa.causal_bottom_right, CAUSAL),
    ("sdpa", "bool mask applied after the softmax"): (sdpa.bool_mask_after_softmax, BOOL),
    ("sdpa", "masked scores filled with a constant"): (sdpa.masked_fill_minus_1e9, _sdpa(mask="bool", empty_rows=True)),
    ("sdpa", "float mask multiplied"): (sdpa.float_mask_multiplied, FLOAT),
    ("sdpa", "GQA heads tiled"): (gqa.tiled, _sdpa(batch=(2, 4), variants=(("gqa", 2),))),
    ("sdpa", "causal mask ignored"): (sdpa.causal_ignored, CAUSAL),
    ("sdpa", "causal dropped when attn_mask is given"): (realistic.causal_dropped_with_mask,
                                                         _sdpa(is_causal=True, mask="bool")),
    ("sdpa", "bool mask inverted"): (sdpa.bool_mask_inverted, BOOL),
    ("sdpa", "bool mask ignored"): (sdpa.bool_mask_ignored, BOOL),
    ("sdpa", "float mask ignored"): (sdpa.float_mask_ignored, FLOAT),
    ("sdpa", "float mask read as a keep-mask"): (sdpa.float_mask_as_keep, FLOAT),
    ("sdpa", "float32 inside"): (sdpa.float32_inside, BASE),
    ("sdpa", "half-precision accumulation"): (sdpa.half_precision_sums,  # a float16 sum stops at 2048
                                              _sdpa(dtype="float16", batch=(), L=2, S=4096, E=8,
                                                    values="identical-keys")),
    ("sdpa", "window off by one"): (window.left_off_by_one, _sdpa(L=7, variants=(("window", (2, 0)),))),
    ("sdpa", "softcap before the scale"): (softcap.cap_before_scale, _sdpa(variants=(("softcap", 1.0),))),
    ("sdpa", "softcap ignored"): (softcap.cap_ignored, _sdpa(variants=(("softcap", 0.5),))),
    ("sdpa", "ALiBi sign flipped"): (alibi.sign_flipped, _sdpa(variants=(("alibi", (0.5, 0.25)),))),
    ("sdpa", "ALiBi slopes reversed across heads"): (alibi.slopes_reversed, _sdpa(variants=(("alibi", (0.5, 0.25)),))),
    ("sdpa", "keys truncated to a tile"): (tiles.keys_first_64, _sdpa(L=3, S=65)),
    ("sdpa", "head dim truncated to a tile"): (tiles.head_dim_64, _sdpa(E=65)),
    ("sdpa", "value features past a tile unwritten"): (tiles.value_features_64, _sdpa(Ev=65)),
    ("sdpa", "last query tile unwritten"): (tiles.last_query_tile_unwritten, _sdpa(L=65)),
    ("sdpa", "tiles of keys normalised alone"): (tiles.tiles_normalised_alone, _sdpa(L=3, S=65)),
    ("mha", "heads concatenated in reverse"): (mha.heads_reversed, MHA),
    ("mha", "heads interleaved"): (mha.heads_interleaved, MHA),
    ("mha", "scale 1/sqrt(d_model)"): (mha.scale_by_d_model, MHA),
    ("mha", "bias dropped"): (mha.output_bias_dropped, _mha(biases=("q", "o"))),
    ("mha", "keys and values from x_q"): (mha.keys_from_queries, MHA),
    ("mha", "head dim truncated to a tile"): (mha.head_width_64, _mha(d_k=65)),
    ("mha", "causal mask ignored"): (mha.causal_ignored, _mha(is_causal=True)),
    ("mha", "causal dropped when attn_mask is given"): (mha.causal_dropped_with_mask,
                                                        _mha(is_causal=True, mask="bool")),
    ("mha", "bool mask inverted"): (mha.mask_polarity_of_torch, _mha(mask="bool")),
    ("mha", "bool mask ignored"): (mha.bool_mask_ignored, _mha(mask="bool")),
    ("mha", "float mask ignored"): (mha.float_mask_ignored, _mha(mask="float")),
    ("mha", "float mask read as a keep-mask"): (mha.float_mask_as_keep, _mha(mask="float")),
    ("mha", "float32 inside"): (mha.float32_inside, MHA),
    ("pe", "concatenated halves"): (pe.concatenated_halves, PeCase(length=5, d_model=6)),
    ("pe", "half_dim - 1 in the exponent"): (pe.halves_half_dim_minus_one, PeCase(length=5, d_model=6)),
    ("pe", "sin and cos swapped"): (pe.sin_cos_swapped, PeCase(length=5, d_model=6)),
    ("pe", "positions from 1"): (pe.positions_from_one, PeCase(length=5, d_model=6)),
    ("pe", "positions divided by the length"): (pe.position_scaled, PeCase(length=5, d_model=6)),
    ("pe", "another base"): (pe.base_1000, PeCase(length=5, d_model=6)),
    ("pe", "angles in float32"): (pe.float32_angles, PeCase(length=3000, d_model=8)),
    ("pe", "columns past a tile unwritten"): (pe.columns_past_128_zero, PeCase(length=3, d_model=130)),
}
