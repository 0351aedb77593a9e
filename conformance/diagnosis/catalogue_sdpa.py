"""The named departures of ``sdpa``: the scale, the softmax, the causal rule, the masks, grouped-query heads.

Each is an alternative formula for ``softmax(s Q K^T + M) V`` (clause ``attention.sdpa``), written as the spec
on changed inputs where it can be (its bound is then exactly the reference's, clause ``attention.accuracy``),
else as other weights from the reference's scores. The departures at tile boundaries are in
:mod:`.catalogue_tiles`, those of the variants in :mod:`.catalogue_variants`, those ``mha`` shares in
:mod:`.shared`; ``CATALOGUE`` holds them all.
"""

from __future__ import annotations

import numpy as np

from kqv.reference.stages import softmax

from ..dtypes import LARGEST, numpy_dtype
from ..kinds.sdpa.bound import prepared
from ..kinds.sdpa.case import SdpaInputs
from . import catalogue_tiles, catalogue_variants, shared
from .entry import Catalogue, Entries, Prediction
from .sdpa_judging import SdpaJudging, correct, magnitudes, observe, probes, scores_of, weighted

ENTRIES = Entries()
departure = ENTRIES.departure


def _keep_folded(inputs: SdpaInputs, kept: np.ndarray) -> SdpaInputs:
    """The call without ``is_causal``, with the keep-mask ``kept (L, S)`` folded into its ``attn_mask``."""
    mask = inputs.attn_mask
    if mask is None:
        mask = kept
    elif mask.dtype == np.bool_:
        mask = mask & kept
    else:
        mask = np.where(kept, mask, np.asarray(-np.inf, dtype=mask.dtype))
    return inputs.replace(attn_mask=mask, is_causal=False)


def _causal_moved(inputs: SdpaInputs, judging: SdpaJudging, step: int) -> Prediction | None:
    """The causal rule ``j <= i + o + step`` instead of ``j <= i + o`` (``o`` the declared alignment's offset)."""
    if not inputs.is_causal or "kv_lengths" in dict(inputs.variants):
        return None  # with key lengths the offset differs per batch entry
    L, S = inputs.query.shape[-2], inputs.key.shape[-2]
    offset = 0 if judging.alignment == "top-left" else S - L
    kept = np.arange(S)[None, :] <= np.arange(L)[:, None] + offset + step  # (L, S)
    return judging.predict(_keep_folded(inputs, kept))


@departure("no scale", "the scores are not scaled: s = 1 where the default is 1/sqrt(E)")
def unscaled(inputs, judging):
    """``x = Q K^T`` (clause ``scores.scale.default``)."""
    return judging.predict(inputs.replace(scale=1.0)) if inputs.scale is None else None


@departure("scale 1/E", "the scores are scaled by 1/E instead of 1/sqrt(E)")
def scale_one_over_e(inputs, judging):
    """``x = Q K^T / E`` (clause ``scores.scale.default``)."""
    return judging.predict(inputs.replace(scale=1.0 / inputs.query.shape[-1])) if inputs.scale is None else None


@departure("scale 1/sqrt(Ev)", "the scores are scaled by 1/sqrt(Ev), the value's width, instead of 1/sqrt(E)")
def scale_value_width(inputs, judging):
    """``x = Q K^T / sqrt(Ev)`` (clause ``scores.scale.default``)."""
    if inputs.scale is not None:
        return None
    return judging.predict(inputs.replace(scale=1.0 / np.sqrt(inputs.value.shape[-1])))


@departure("explicit scale ignored", "an explicit scale is ignored: the scores are always scaled by 1/sqrt(E)")
def explicit_scale_ignored(inputs, judging):
    """``x = Q K^T / sqrt(E)`` whatever ``scale`` says (clause ``scores.scale.explicit``)."""
    return None if inputs.scale is None else judging.predict(inputs.replace(scale=None))


@departure("explicit scale times 1/sqrt(E)", "an explicit scale multiplies 1/sqrt(E) instead of replacing it")
def explicit_scale_multiplies(inputs, judging):
    """``x = scale Q K^T / sqrt(E)`` (clause ``scores.scale.explicit``)."""
    if inputs.scale is None:
        return None
    return judging.predict(inputs.replace(scale=inputs.scale / np.sqrt(inputs.query.shape[-1])))


@departure("softmax over the queries", "the softmax normalises each key's column over the queries instead of each "
           "query's row over the keys")
def softmax_over_queries(inputs, judging):
    """``P_ij = exp(x_ij - m_j) / sum_k exp(x_kj - m_j)``, ``m_j`` the column max (clause
    ``softmax.rows-sum-to-one``)."""
    call, x = scores_of(inputs, judging)
    if call.sinks is not None:
        return None
    weights, _ = softmax(x, axis=-2)
    return weighted(call, x, weights, judging.precision, axis=-2)


@departure("no max subtracted", "the softmax takes exp(x) without subtracting the row max: it overflows past "
           "log(max) and a row of very negative scores underflows to 0/0")
def naive_exp(inputs, judging):
    """``P_ij = exp(x_ij) / sum_k exp(x_ik)``, ``exp`` in the accumulation dtype (clause ``softmax.stable``)."""
    call, x = scores_of(inputs, judging)
    if call.sinks is not None:
        return None
    dtype = judging.precision.dtype
    inside = dtype if dtype == "float64" or judging.accumulation == "dtype" else "float32"
    with np.errstate(all="ignore"):
        numerator = np.exp(x.astype(numpy_dtype(inside))).astype(np.float64)  # inf past log(max), 0 below underflow
        weights = numerator / np.sum(numerator, axis=-1, keepdims=True)  # NaN: inf / inf, 0 / 0
    return weighted(call, x, weights, judging.precision)


@departure("causal one key short", "the causal rule keeps j < i + o (strict) instead of j <= i + o: a query does not "
           "see its own position")
def causal_strict(inputs, judging):
    """Key j kept for query i iff ``j <= i + o - 1`` (clauses ``mask.causal.top-left``,
    ``mask.causal.bottom-right``)."""
    return _causal_moved(inputs, judging, -1)


@departure("causal one key ahead", "the causal rule keeps j <= i + o + 1: each query also sees the next key")
def causal_ahead(inputs, judging):
    """Key j kept for query i iff ``j <= i + o + 1``."""
    return _causal_moved(inputs, judging, 1)


@departure("causal aligned the other way", "is_causal aligned top-left (j <= i) where bottom-right (j <= i + S - L) "
           "is declared, or the other way")
def causal_other_alignment(inputs, judging):
    """The offset ``o`` of the other alignment: ``S - L`` instead of 0, or 0 instead of ``S - L``."""
    if not inputs.is_causal or inputs.query.shape[-2] == inputs.key.shape[-2]:
        return None
    other = "bottom-right" if judging.alignment == "top-left" else "top-left"
    return judging.predict(inputs, alignment=other)


@departure("bool mask applied after the softmax", "the bool mask zeroes the weights of a softmax over every key, "
           "which are not renormalised")
def mask_after_softmax(inputs, judging):
    """``P_ij = m_ij softmax(x)_ij``, the softmax over the keys the mask drops too (clause ``mask.bool``)."""
    mask = inputs.attn_mask
    if mask is None or mask.dtype != np.bool_:
        return None
    call, x = scores_of(inputs.replace(attn_mask=np.ones_like(mask)), judging)
    if call.sinks is not None:
        return None
    weights, _ = softmax(x)
    return weighted(call, x, weights * np.broadcast_to(mask, call.shape), judging.precision)


FILLS = {"-1e4": lambda dtype: -1e4, "-1e9": lambda dtype: -1e9, "finfo.min": lambda dtype: -LARGEST[dtype]}


@departure("masked scores filled with a constant", "masked_fill({detail}) instead of -inf where the bool mask or the "
           "causal rule drops a key: a row with no key left averages its values, and scores within reach of the "
           "constant leak")
def filled(inputs, judging):
    """``x_ij = C`` at every key a keep rule (the bool mask, ``is_causal``, a window) drops, not ``-inf``: the scores,
    a float mask added, then ``masked_fill`` (so a float mask's ``-inf`` is filled too where a rule drops the key).
    Clauses ``mask.bool``, ``mask.fully-masked-row``."""
    mask = inputs.attn_mask
    bool_mask = mask is not None and mask.dtype == np.bool_
    if not (inputs.is_causal or bool_mask) or "kv_lengths" in dict(inputs.variants):
        return None
    rules = inputs if mask is None or bool_mask else inputs.replace(attn_mask=np.zeros_like(mask))
    rules_off = inputs.without("window").replace(is_causal=False)
    if bool_mask:
        rules_off = rules_off.replace(attn_mask=np.ones_like(mask))
    call, x = scores_of(rules_off, judging)  # (*batch, L, S): scores and biases, no key dropped by a rule
    if call.sinks is not None:
        return None
    dropped = ~np.broadcast_to(prepared(rules, judging.alignment).kept(), x.shape)  # by the keep rules alone
    A = np.where(dropped, 0.0, magnitudes(call))  # a constant is exact: its score has no error
    M = np.where(dropped, 0.0, call.biases())
    for detail, constant in FILLS.items():
        filled_x = np.where(dropped, constant(judging.precision.dtype), x)
        weights, _ = softmax(filled_x)
        yield detail, weighted(call, filled_x, weights, judging.precision, A, M)


@departure("float mask multiplied", "a float attn_mask multiplies the scores instead of being added to them")
def float_mask_multiplied(inputs, judging):
    """``x_ij = s q_i.k_j M_ij`` (clause ``mask.additive``): ``-inf`` entries give ``-inf`` or ``+inf`` by the sign
    of the score, so whole rows turn NaN."""
    mask = inputs.attn_mask
    if mask is None or mask.dtype == np.bool_:
        return None
    call, x = scores_of(inputs.replace(attn_mask=np.zeros_like(mask)), judging)
    if call.sinks is not None or call.alibi_slopes is not None:
        return None
    factor = np.broadcast_to(np.asarray(mask, dtype=np.float64), call.shape)
    with np.errstate(invalid="ignore"):
        product = np.where(np.isfinite(x), x * factor, x)  # -inf (a dropped key) stays
        weights, _ = softmax(product)
    A = magnitudes(call) * np.where(np.isfinite(factor), np.abs(factor), 0.0)
    return weighted(call, product, weights, judging.precision, A, np.zeros(call.shape))


@departure("GQA heads tiled", "query head h reads key/value head h % H_kv (tiled) instead of h // G "
           "(repeat-interleave)")
def gqa_tiled(inputs, judging):
    """Key and value heads ``np.tile``-d to ``H_q`` heads instead of repeated in place (clause ``gqa.head-mapping``)."""
    if "gqa" not in dict(inputs.variants):
        return None
    reps = [1] * inputs.key.ndim
    reps[-3] = inputs.query.shape[-3] // inputs.key.shape[-3]  # G
    tiled = inputs.without("gqa").replace(key=np.tile(inputs.key, reps), value=np.tile(inputs.value, reps))
    return judging.predict(tiled)  # key (..., H_q, S, E): head h is old head h % H_kv


shared.register(ENTRIES)

CATALOGUE = Catalogue("sdpa", tuple(ENTRIES) + tuple(catalogue_variants.ENTRIES) + tuple(catalogue_tiles.ENTRIES),
                      observe, correct, probes)
