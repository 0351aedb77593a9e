"""Shared pieces of the reference tests: hypothesis strategies and float64 forward-error bounds.

The sdpa bound is the tolerance model of ``kqv.conformance.kinds.sdpa.bound`` at float64; the mha and
pe bounds are first-order forward-error bounds of the float64 computation in units of
``u = 2**-53``, so that a correct float64 implementation stays well below them while an
implementation off by a rounding of a lower precision (float32: ``2**-24``) or by a wrong
formula does not.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kqv.conformance.tolerance import Precision
from kqv.conformance.kinds.sdpa.bound import sdpa_bound as sdpa_bound_model
from kqv.reference import attention_weights, causal_mask

U = 2.0**-53
TINY = np.finfo(np.float64).tiny


# --------------------------------------------------------------------------- bounds


def sdpa_bound(query, key, value, weights, *, scale=None, additive=None):
    """Allowed float64 error of each element of ``O = P V``, ``(..., L, Ev)``: the tolerance model of
    ``kqv.conformance.kinds.sdpa.bound`` (clause ``attention.accuracy``) at float64.

    ``weights`` is the (exact or reference) ``P``; keys with ``P_ij = 0`` count as masked and
    ``additive`` is the float mask (its ``-inf`` entries are masked keys).
    """
    query, key, value = (np.asarray(a, dtype=np.float64) for a in (query, key, value))
    s = 1.0 / np.sqrt(query.shape[-1]) if scale is None else float(scale)
    kept = np.asarray(weights) > 0
    finite = np.zeros(kept.shape) if additive is None else np.where(np.isfinite(additive), additive, 0.0)
    kept, finite = np.broadcast_arrays(kept, finite)
    return sdpa_bound_model(query, key, value, np.asarray(weights, dtype=np.float64), kept, finite, s,
                            Precision.of("float64")) + TINY


def pe_bound(length, d_model, base=10000.0):
    """Allowed float64 error of each PE element, ``(length, d_model)``.

    The angle ``pos * base^(-2i/d)`` is off by ``(2 + (2i/d) |ln base|) u |angle|``
    and sin/cos add about one ulp: ``2 ((3 + (2i/d)|ln base|) u |angle| + 2u) + tiny``.
    """
    column = np.arange(d_model)
    exponent = (column - column % 2) / d_model  # 2i/d for both columns of a pair
    angle = np.arange(length)[:, None] * np.power(base, -exponent)[None, :]
    return 2 * ((3 + exponent * abs(np.log(base))) * U * np.abs(angle) + 2 * U) + TINY


def mha_bound(x_q, x_kv, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, num_heads, attn_mask=None, is_causal=False):
    """Allowed float64 error of each element of multi-head attention, ``(B, L, d_model)``.

    Propagates first-order error bounds through the projections (``(n + 2) u`` of
    ``|x||W| + |b|``), each head (the error of its scores from the projected Q, K
    and the weights' factor ``exp(2 D)`` as in :func:`sdpa_bound`, plus the
    error of V carried by P) and the output projection, then multiplies by 4.
    """
    d_model = x_q.shape[-1]

    def project(x, w, b):
        y = x @ w + b
        err = 2 * (x.shape[-1] + 2) * U * (np.abs(x) @ np.abs(w) + np.abs(b))
        return y, err

    def split(x):  # (B, n, h*d) -> (B, h, n, d)
        B, n, width = x.shape
        return x.reshape(B, n, num_heads, width // num_heads).transpose(0, 2, 1, 3)

    (q, eq), (k, ek), (v, ev) = project(x_q, w_q, b_q), project(x_kv, w_k, b_k), project(x_kv, w_v, b_v)
    q, eq, k, ek, v, ev = (split(a) for a in (q, eq, k, ek, v, ev))
    d_k = q.shape[-1]
    s = 1.0 / np.sqrt(d_k)
    mask = None if attn_mask is None else (attn_mask if attn_mask.ndim == 3 else attn_mask[None])[:, None]
    weights = attention_weights(q, k, attn_mask=mask, is_causal=is_causal)  # (B, h, L, S)
    kept = weights > 0
    kt = np.swapaxes
    scores = s * (q @ kt(k, -1, -2))
    score_error = s * (eq @ kt(np.abs(k), -1, -2) + np.abs(q) @ kt(ek, -1, -2)) \
        + (d_k + 4) * U * s * (np.abs(q) @ kt(np.abs(k), -1, -2))
    row_max = np.max(np.where(kept, scores, -np.inf), axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    spread = np.max(np.where(kept, np.abs(scores - row_max), 0.0), axis=-1)
    exponent_error = np.max(np.where(kept, score_error, 0.0), axis=-1) + 2 * U * spread
    source = k.shape[-2]
    relative = 16 * (source + d_k) * U + np.expm1(2 * exponent_error)  # (B, h, L)
    heads = weights @ v
    head_error = relative[..., None] * (weights @ np.abs(v)) + weights @ ev + U * np.abs(heads)  # (B, h, L, d_v)
    B, h, L, d_v = heads.shape
    concat = heads.transpose(0, 2, 1, 3).reshape(B, L, h * d_v)
    concat_error = head_error.transpose(0, 2, 1, 3).reshape(B, L, h * d_v)
    out_error = concat_error @ np.abs(w_o) + 2 * (h * d_v + 2) * U * (np.abs(concat) @ np.abs(w_o) + np.abs(b_o))
    assert out_error.shape[-1] == d_model
    return 4 * out_error + TINY


def peak_memory(function) -> int:
    """The peak of the memory ``function()`` allocates through Python, in bytes (``tracemalloc``)."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- strategies


@dataclass
class Case:
    """One attention call: arrays plus the keyword arguments of the reference."""

    query: np.ndarray
    key: np.ndarray
    value: np.ndarray
    attn_mask: np.ndarray | None = None
    is_causal: bool = False
    scale: float | None = None
    causal_alignment: str = "top-left"

    def kwargs(self):
        return dict(attn_mask=self.attn_mask, is_causal=self.is_causal, scale=self.scale,
                    causal_alignment=self.causal_alignment)

    def broadcast_query(self):
        """``query`` broadcast to the batch of all three arrays, for the weights ``(..., L, S)``."""
        batch = np.broadcast_shapes(self.query.shape[:-2], self.key.shape[:-2], self.value.shape[:-2])
        return np.broadcast_to(self.query, batch + self.query.shape[-2:])

    def additive(self):
        if self.attn_mask is not None and self.attn_mask.dtype != np.bool_:
            return self.attn_mask
        return None


def finite_floats(bound=4.0):
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def batch_shapes(draw, max_dims=2):
    """Batch shapes of query, key and value that broadcast: each dim is n or 1 per array."""
    full = draw(st.lists(st.integers(1, 3), min_size=0, max_size=max_dims))
    shapes = []
    for _ in range(3):
        shape = tuple(n if draw(st.booleans()) else 1 for n in full)
        drop = draw(st.integers(0, len(shape)))  # leading dims may be left out
        shapes.append(shape[drop:])
    return shapes, tuple(np.broadcast_shapes(*shapes))


@st.composite
def attention_cases(draw, *, mask_kinds=("none", "bool", "float"), causal=("none", "top-left", "bottom-right"),
                    explicit_scale=True, max_len=5, max_dim=5, large_logits=True, keep_one=True,
                    torch_compatible=False):
    """Random small attention calls.

    ``keep_one`` makes every row keep at least one key after all masking (needed
    against torch, which returns NaN for fully masked rows); ``torch_compatible``
    gives the mask only the batch dims of query and key, as torch requires.
    """
    (q_batch, k_batch, v_batch), batch = draw(batch_shapes())
    L, S = draw(st.integers(1, max_len)), draw(st.integers(1, max_len))
    e, ev = draw(st.integers(1, max_dim)), draw(st.integers(1, max_dim))
    magnitude = 10.0 ** draw(st.sampled_from([0, 0, 0, 1, 3, 6] if large_logits else [0]))
    query = draw(hnp.arrays(np.float64, q_batch + (L, e), elements=finite_floats(), fill=st.nothing())) * magnitude
    key = draw(hnp.arrays(np.float64, k_batch + (S, e), elements=finite_floats(), fill=st.nothing()))
    value = draw(hnp.arrays(np.float64, v_batch + (S, ev), elements=finite_floats(), fill=st.nothing()))
    kind = draw(st.sampled_from(mask_kinds))
    alignment = draw(st.sampled_from(causal))
    is_causal = alignment != "none"
    alignment = "top-left" if alignment == "none" else alignment
    if is_causal and keep_one and alignment == "bottom-right" and L > S:
        L = S  # every row keeps a key
        query = query[..., :L, :]
    if torch_compatible:  # torch broadcasts the mask to the scores, whose batch leaves out value's
        batch = tuple(np.broadcast_shapes(q_batch, k_batch))
    mask_shape = draw(st.sampled_from([batch + (L, S), (L, S), (1,) * len(batch) + (L, S)]))
    # Key 0 is seen by every query under both causal rules (bottom-right has L <= S here).
    always = 0
    mask = None
    if kind == "bool":
        mask = draw(hnp.arrays(np.bool_, mask_shape))
        if keep_one:
            mask[..., always] = True
    elif kind == "float":
        elements = st.one_of(finite_floats(5.0), st.just(-np.inf))
        mask = draw(hnp.arrays(np.float64, mask_shape, elements=elements, fill=st.nothing()))
        if keep_one:
            mask[..., always] = draw(finite_floats(5.0))
    scale = None
    if explicit_scale and draw(st.booleans()):
        scale = draw(st.floats(-2.0, 2.0, allow_nan=False, width=64))
    return Case(query, key, value, mask, is_causal, scale, alignment)


def keep_mask_of(case: Case) -> np.ndarray:
    """The combined keep-mask of ``case`` written out independently of kqv.reference.masking."""
    L, S = case.query.shape[-2], case.key.shape[-2]
    keep = np.ones((L, S), dtype=bool)
    if case.attn_mask is not None:
        keep = keep & (case.attn_mask if case.attn_mask.dtype == np.bool_ else case.attn_mask > -np.inf)
    if case.is_causal:
        keep = keep & causal_mask(L, S, case.causal_alignment)
    return keep


def seeded_case(rng: np.random.Generator, *, torch_compatible: bool = False) -> Case:
    """A random small attention call from a numpy generator (for the fixed-seed accuracy reports).

    ``torch_compatible`` leaves out what torch does not do: bottom-right causal,
    ``attn_mask`` together with ``is_causal``, and rows with every key masked.
    """
    batch = tuple(int(n) for n in rng.integers(1, 3, size=rng.integers(0, 3)))
    L, S, e, ev = (int(n) for n in rng.integers(1, 6, size=4))
    shapes = []
    for _ in range(3):  # each array may have 1 in place of a batch dim, or fewer leading dims
        shape = tuple(n if rng.random() < 0.7 else 1 for n in batch)
        shapes.append(shape[int(rng.integers(0, len(shape) + 1)) if rng.random() < 0.2 else 0:])
    batch = tuple(np.broadcast_shapes(*shapes))
    magnitude = 10.0 ** rng.uniform(-1, 6) if rng.random() < 0.3 else 10.0 ** rng.uniform(-1, 1)
    query = rng.standard_normal(shapes[0] + (L, e)) * magnitude
    key = rng.standard_normal(shapes[1] + (S, e))
    value = rng.standard_normal(shapes[2] + (S, ev))
    causal = ["none", "top-left"] if torch_compatible else ["none", "top-left", "bottom-right"]
    mask_batch = tuple(np.broadcast_shapes(shapes[0], shapes[1])) if torch_compatible else batch
    alignment = str(rng.choice(causal))
    kind = str(rng.choice(["none", "bool", "float"]))
    if torch_compatible and alignment != "none":
        kind = "none"
    mask = None
    if kind == "bool":
        mask = rng.random(mask_batch + (L, S)) < 0.7
    elif kind == "float":
        mask = np.where(rng.random(mask_batch + (L, S)) < 0.7, rng.standard_normal(mask_batch + (L, S)) * 3, -np.inf)
    if mask is not None and (torch_compatible or rng.random() < 0.8):
        mask[..., 0] = True if kind == "bool" else 0.5  # every row keeps key 0
    scale = float(rng.uniform(-2, 2)) if rng.random() < 0.3 else None
    is_causal = alignment != "none"
    return Case(query, key, value, mask, is_causal, scale, "top-left" if not is_causal else alignment)
