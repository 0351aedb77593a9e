"""Broken ``sdpa`` implementations (NumPy), one plausible bug each; ``breaks`` names the clause."""

from __future__ import annotations

import numpy as np

from ._base import (attention, breaks, causal_keep, declared, masked_scores, scores_of, sequential_matmul,
                    sequential_softmax, stable_softmax, with_bias)


@breaks("scores.scale.default")
def scale_one_over_e(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Scales the scores by 1/E instead of 1/sqrt(E)."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                     scale_rule=lambda E, given: 1.0 / E if given is None else given)


@breaks("scores.scale.default")
def no_scale(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Forgets the default scale."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                     scale_rule=lambda E, given: 1.0 if given is None else given)


@breaks("scores.scale.explicit")
def explicit_scale_ignored(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Always uses 1/sqrt(E), ignoring an explicit scale."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, None)


@breaks("scores.scale.explicit")
def explicit_scale_multiplies(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Multiplies the default scale by the explicit one instead of replacing it."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                     scale_rule=lambda E, given: (1.0 if given is None else given) / np.sqrt(E))


@breaks("softmax.rows-sum-to-one")
def softmax_over_queries(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Normalises over the query axis instead of the key axis."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                     softmax=lambda x: stable_softmax(x, axis=-2))


@breaks("mask.bool")
def bool_mask_inverted(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Reads a bool mask as True = ignore (torch.nn.MultiheadAttention's polarity)."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, invert_bool=True)


@breaks("mask.bool")
def mask_of_first_batch_entry(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Applies the mask of batch entry 0 to every entry."""
    if attn_mask is not None and attn_mask.ndim > 2:
        attn_mask = attn_mask[(0,) * (attn_mask.ndim - 2)]
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("mask.additive")
def float_mask_ignored(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Honours bool masks but drops float ones."""
    if attn_mask is not None and attn_mask.dtype != np.bool_:
        attn_mask = None
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("mask.additive")
def float_mask_as_keep(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Treats a float mask as a keep-mask (nonzero = keep) instead of adding it."""
    if attn_mask is not None and attn_mask.dtype != np.bool_:
        attn_mask = attn_mask.astype(np.float64) != 0
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("mask.causal.top-left")
def causal_strict(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Off by one: query i sees keys j < i, not j <= i."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, causal_offset=-1)


@breaks("mask.causal.top-left")
def causal_one_ahead(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Off by one the other way: query i sees key i + 1 too."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, causal_offset=1)


@breaks("mask.causal.top-left")
def causal_bottom_right(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Aligns the causal mask bottom-right (j <= i + S - L) while the contract says top-left."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                     causal_offset=key.shape[-2] - query.shape[-2])


@breaks("mask.causal.bottom-right", causal_alignment="bottom-right")
def declared_bottom_right_but_top_left(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Declares bottom-right alignment but applies top-left."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("softmax.stable")
def naive_exp(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """exp(x) / sum exp(x) without subtracting the row max: overflows past log(max)."""
    def softmax(x):
        with np.errstate(over="ignore", invalid="ignore"):
            weights = np.exp(x)
            return weights / weights.sum(axis=-1, keepdims=True)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, softmax=softmax,
                     compute=query.dtype if query.dtype == np.float32 else np.float64)


@breaks("attention.batch-independence")
def global_max(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Subtracts the max over the whole tensor, not per row: far-apart rows underflow to 0/0."""
    def softmax(x):
        finite = x[np.isfinite(x)]
        with np.errstate(invalid="ignore"):
            weights = np.exp(x - (finite.max() if finite.size else 0.0))
            return weights / weights.sum(axis=-1, keepdims=True)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, softmax=softmax)


@breaks("mask.zero-weight")
def mask_as_minus_1e4(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """masked_fill(-1e4): a finite stand-in for -inf, beaten by scores of 1e4 and more."""
    if attn_mask is not None:
        attn_mask = np.where(attn_mask, 0.0, -1e4) if attn_mask.dtype == np.bool_ else \
            np.maximum(attn_mask.astype(np.float64), -1e4)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("attention.accuracy")
def float32_inside(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Takes float64, computes in float32, returns float64."""
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, compute=np.float32)


@breaks("attention.dtype")
def always_float64(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Returns float64 whatever the input dtype."""
    return attention(query.astype(np.float64), key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("impl.inputs-unmodified")
def scales_query_in_place(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Scales the query in place to save a copy."""
    s = 1.0 / np.sqrt(query.shape[-1]) if scale is None else scale
    query *= query.dtype.type(s)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, 1.0)


@breaks("impl.determinism")
def random_key_order(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Sums the keys in a random order (as racing threads would): the last bits change from call to call."""
    S = key.shape[-2]
    order = np.random.default_rng().permutation(S)
    if attn_mask is not None and attn_mask.ndim >= 1:
        attn_mask = attn_mask[..., order]
    if is_causal:
        keep = causal_keep(query.shape[-2], S)[..., order]
        attn_mask = keep if attn_mask is None else (attn_mask & keep if attn_mask.dtype == np.bool_ else
                                                    np.where(keep, attn_mask, -np.inf))
    return attention(query, key[..., order, :], value[..., order, :], attn_mask, dropout_p, False, scale)


@breaks("impl.strided-inputs")
def reads_buffer_as_contiguous(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Reads the query's memory as if it were C-contiguous (ignores its strides)."""
    strides = tuple(int(np.prod(query.shape[i + 1:])) * query.itemsize for i in range(query.ndim))
    query = np.lib.stride_tricks.as_strided(query, query.shape, strides) if query.size else query
    return attention(np.array(query), key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("mask.fully-masked-row", masked_rows="zeros")
def nan_rows_declared_zeros(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Declares zeros for rows that keep no key, returns NaN (0/0)."""
    def softmax(x):
        with np.errstate(invalid="ignore"):
            weights = np.exp(x - x.max(axis=-1, keepdims=True))  # -inf - (-inf) = NaN on an empty row
            return weights / weights.sum(axis=-1, keepdims=True)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, softmax=softmax)


@breaks("mask.fully-masked-row")
def masked_rows_inconsistent(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Undeclared convention that changes with the call: zeros when S is even, the mean of V when it is odd."""
    out = attention(query, key, value, attn_mask, dropout_p, is_causal, scale).astype(np.float64)
    if key.shape[-2] % 2:
        scores = masked_scores(scores_of(query.astype(np.float64), key.astype(np.float64), 1.0), attn_mask, is_causal)
        empty = ~np.isfinite(scores).any(axis=-1)  # (..., L)
        out = np.where(empty[..., None], value.astype(np.float64).mean(axis=-2, keepdims=True), out)
    return out.astype(query.dtype)


@breaks("attention.permutation.keys")
def position_bias(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Adds a small distance penalty -0.5 |i - j| to the scores (an ALiBi that nobody asked for)."""
    L, S = query.shape[-2], key.shape[-2]
    bias = -0.5 * np.abs(np.arange(L)[:, None] - np.arange(S)[None, :])
    return attention(query, key, value, with_bias(attn_mask, bias).astype(query.dtype), dropout_p, is_causal, scale)


@breaks("output.linear-in-value")
def clipped_output(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Clips the output to [-3, 3] (a saturating cast)."""
    return np.clip(attention(query, key, value, attn_mask, dropout_p, is_causal, scale), -3, 3)


@breaks("attention.shape")
def drops_value_width(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Returns (..., L, E) by slicing the value to the query's width."""
    out = attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    E = query.shape[-1]
    return out[..., :E] if out.shape[-1] >= E else np.concatenate([out, np.zeros(out.shape[:-1] + (E - out.shape[-1],),
                                                                                   out.dtype)], axis=-1)


@breaks("attention.sdpa")
def hard_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Replaces the softmax by a one-hot argmax (a 'temperature 0' shortcut)."""
    def softmax(x):
        hot = x == x.max(axis=-1, keepdims=True)
        return hot / np.maximum(hot.sum(axis=-1, keepdims=True), 1)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, softmax=softmax)


@breaks("scores.scale.default")
def scale_value_width(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Scales the scores by 1/sqrt(Ev), the value's width, instead of 1/sqrt(E)."""
    Ev = value.shape[-1]
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                     scale_rule=lambda E, given: 1.0 / np.sqrt(Ev) if given is None else given)


@breaks("mask.causal.top-left")
def causal_ignored(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Takes is_causal and never applies it."""
    return attention(query, key, value, attn_mask, dropout_p, False, scale)


@breaks("mask.bool")
def bool_mask_ignored(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Honours float masks but drops bool ones."""
    if attn_mask is not None and attn_mask.dtype == np.bool_:
        attn_mask = None
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("mask.bool")
def bool_mask_after_softmax(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Multiplies the weights by a bool mask after a softmax over every key, without renormalising."""
    if attn_mask is None or attn_mask.dtype != np.bool_:
        return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    keep = attn_mask
    return attention(query, key, value, None, dropout_p, is_causal, scale,
                     softmax=lambda x: stable_softmax(x) * keep)


@breaks("mask.additive")
def float_mask_multiplied(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Multiplies the scores by a float mask instead of adding it."""
    if attn_mask is None or attn_mask.dtype == np.bool_:
        return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    factor = attn_mask.astype(np.float64)

    def softmax(x):
        with np.errstate(invalid="ignore"):
            return stable_softmax(np.where(np.isfinite(x), x * factor, x))
    return attention(query, key, value, None, dropout_p, is_causal, scale, softmax=softmax)


def _filled_with(constant):
    def filled(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        out_dtype = query.dtype
        query, key, value = (np.asarray(a, dtype=np.float64) for a in (query, key, value))
        s = 1.0 / np.sqrt(query.shape[-1]) if scale is None else scale
        scores = scores_of(query, key, s)  # (..., L, S)
        L, S = scores.shape[-2:]
        if attn_mask is not None and attn_mask.dtype != np.bool_:
            scores = scores + attn_mask.astype(np.float64)
        keep = np.ones(scores.shape, dtype=bool)
        if attn_mask is not None and attn_mask.dtype == np.bool_:
            keep = keep & attn_mask
        if is_causal:
            keep = keep & causal_keep(L, S)
        fill = constant(out_dtype) if callable(constant) else constant
        return (stable_softmax(np.where(keep, scores, fill)) @ value).astype(out_dtype)
    return filled


@breaks("mask.fully-masked-row", masked_rows="zeros")
def masked_fill_minus_1e9(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """scores.masked_fill(~keep, -1e9) (the annotated transformer): a row with no key left averages its values."""
    return _filled_with(-1e9)(query, key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("mask.fully-masked-row", masked_rows="zeros")
def masked_fill_finfo_min(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """scores.masked_fill(~keep, finfo(dtype).min): a row with no key left averages its values."""
    return _filled_with(lambda dtype: float(np.finfo(np.float64 if dtype == np.float64 else dtype).min))(
        query, key, value, attn_mask, dropout_p, is_causal, scale)


@breaks("softmax.stable")
def masked_fill_minus_1e4(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """scores.masked_fill(~keep, -1e4): scores of 1e4 and more beat the masked keys' constant."""
    return _filled_with(-1e4)(query, key, value, attn_mask, dropout_p, is_causal, scale)


@declared(dtypes=("float16",))
def half_precision_sums(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Computes float16 inputs in float16 throughout: dot products and softmax sums accumulate in float16.

    Within the bound of float32 sums wherever a float16 kernel stores its scores (``6 u_s A``) until a row sums
    thousands of equal weights (a float16 sum stops at 2048): the profiles draw no such row, so it is not in the
    set that ``test_broken_implementations`` runs."""
    if query.dtype != np.float16:
        return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, compute=np.float16,
                     softmax=sequential_softmax, matmul=sequential_matmul,
                     scale_rule=lambda E, given: np.float16(1.0 / np.sqrt(E) if given is None else given))
