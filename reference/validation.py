"""Shared input checks of the reference and its oracle.

Every check names the argument it rejects, what it got and what was expected, so
that a caller can fix the call without reading the source. Shape and value
problems raise :class:`ValueError`; dtype problems raise :class:`TypeError`.

The shape rules are those of clause ``attention.shape``: ``query`` is
``(..., L, E)``, ``key`` is ``(..., S, E)``, ``value`` is ``(..., S, Ev)``, their
batch dims ``...`` broadcast, and a mask broadcasts to ``(..., L, S)``. Any
floating input is accepted and the reference computes in float64.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np

CAUSAL_ALIGNMENTS = ("top-left", "bottom-right")
MASKED_ROWS = ("zeros", "nan", "uniform")

# Floating dtypes numpy itself does not class as floating (ml_dtypes registers them with kind "V").
_EXTENSION_FLOAT_PREFIXES = ("bfloat16", "float8_", "float6_", "float4_")


def is_floating_dtype(dtype: np.dtype) -> bool:
    """True for numpy floating dtypes and the ml_dtypes floats (bfloat16, float8_*, ...)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return True
    return dtype.kind == "V" and dtype.names is None and dtype.name.startswith(_EXTENSION_FLOAT_PREFIXES)


def as_float64(name: str, array: Any) -> np.ndarray:
    """Return ``array`` as a float64 ndarray, refusing non-floating dtypes (clause ``attention.dtype``).

    Integer, bool, complex, object and string inputs raise :class:`TypeError` naming
    ``name`` and the dtype; every floating dtype (float16, float32, float64,
    longdouble, bfloat16, ...) is converted exactly or by rounding to float64.
    """
    original = array
    array = np.asarray(array)
    if not is_floating_dtype(array.dtype):
        raise TypeError(f"{name}: expected a floating dtype (float16, bfloat16, float32 or float64), "
                        f"got {array.dtype} (from {type(original).__name__})")
    return np.asarray(array, dtype=np.float64)


def check_min_ndim(name: str, array: np.ndarray, layout: str, ndim: int = 2) -> None:
    """Require ``array.ndim >= ndim``; ``layout`` is the expected shape in words, e.g. ``(..., L, E)``."""
    if array.ndim < ndim:
        raise ValueError(f"{name}: expected shape {layout} with at least {ndim} dims, "
                         f"got shape {array.shape} ({array.ndim} dim{'s' if array.ndim != 1 else ''})")


def broadcast_batch(named_shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """Broadcast the batch dims (all but the last two) of the named shapes, or raise naming all of them."""
    batches = {name: shape[:-2] for name, shape in named_shapes.items()}
    try:
        return tuple(np.broadcast_shapes(*batches.values()))
    except ValueError:
        names = _join(list(batches))
        dims = _join([str(batch) for batch in batches.values()])
        shapes = ", ".join(f"{name} {shape}" for name, shape in named_shapes.items())
        raise ValueError(f"{names}: batch dims {dims} do not broadcast ({shapes})") from None


def check_attention_shapes(query: np.ndarray, key: np.ndarray, value: np.ndarray) -> tuple[int, ...]:
    """Check ``query (..., L, E)``, ``key (..., S, E)``, ``value (..., S, Ev)`` and return the batch shape.

    Clause ``attention.shape``: the output is ``(..., L, Ev)`` with ``...`` the
    broadcast of the three batch shapes.
    """
    check_min_ndim("query", query, "(..., L, E)")
    check_min_ndim("key", key, "(..., S, E)")
    check_min_ndim("value", value, "(..., S, Ev)")
    e = query.shape[-1]
    if key.shape[-1] != e:
        raise ValueError(f"key: expected shape (..., S, {e}) with E={e} matching query's last dim, "
                         f"got {key.shape}")
    s = key.shape[-2]
    if value.shape[-2] != s:
        raise ValueError(f"value: expected shape (..., {s}, Ev) with S={s} matching key's "
                         f"second-to-last dim, got {value.shape}")
    return broadcast_batch({"query": query.shape, "key": key.shape, "value": value.shape})


def as_mask(attn_mask: Any, target: tuple[int, ...]) -> np.ndarray:
    """Return ``attn_mask`` as a bool keep-mask or a float64 additive mask broadcastable to ``target``.

    Clauses ``mask.bool`` (True = the key takes part) and ``mask.additive`` (added
    to the scores; entries are finite or ``-inf``). Any other dtype raises
    :class:`TypeError`; a shape that does not broadcast to ``target = (..., L, S)``
    without enlarging it raises :class:`ValueError`.
    """
    array = np.asarray(attn_mask)
    if array.dtype == np.bool_:
        mask = array
    elif is_floating_dtype(array.dtype):
        mask = np.asarray(array, dtype=np.float64)
        bad = np.isnan(mask) | (mask == np.inf)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"attn_mask: a floating mask holds finite values or -inf, got {mask[where]} "
                             f"at index {where}")
    else:
        raise TypeError(f"attn_mask: expected bool (True = the key takes part) or floating (added to the "
                        f"scores) dtype, got {array.dtype}")
    try:
        fits = np.broadcast_shapes(mask.shape, target) == tuple(target)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"attn_mask: shape {mask.shape} does not broadcast to (..., L, S) = {tuple(target)}")
    return mask


def check_scale(scale: Any) -> float:
    """An explicit ``scale`` must be a finite real number (clause ``scores.scale.explicit``)."""
    if isinstance(scale, np.ndarray) and scale.ndim == 0 and scale.dtype.kind in "iuf":
        scale = scale.item()  # a 0-d array holding a number
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale: expected a finite real number or None, got {scale!r} ({type(scale).__name__})")
    value = float(scale)
    if not math.isfinite(value):
        raise ValueError(f"scale: expected a finite real number or None, got {value}")
    return value


def check_dropout(dropout_p: Any) -> None:
    """The reference is deterministic: ``dropout_p`` must be 0."""
    if isinstance(dropout_p, (bool, np.bool_)) or not isinstance(dropout_p, numbers.Real) or dropout_p != 0:
        raise ValueError(f"dropout_p must be 0.0: the reference is deterministic; got {dropout_p!r}")


def check_bool(name: str, value: Any) -> bool:
    """A flag such as ``is_causal`` must be a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` must be one of ``choices``; the error lists them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_count(name: str, value: Any, minimum: int) -> int:
    """``value`` must be an integer (not a bool) ``>= minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_num_heads(num_heads: Any, widths: dict[str, int]) -> int:
    """``num_heads >= 1`` must divide each projection width (clause ``mha.split``).

    ``widths`` maps a name such as ``"w_q"`` to its number of columns ``h * d_k``.
    """
    heads = check_count("num_heads", num_heads, 1)
    for name, width in widths.items():
        if width % heads:
            raise ValueError(f"num_heads: {heads} does not divide {name}'s width {width} "
                             f"(expected num_heads * d_k columns)")
    return heads


def check_shape(name: str, array: np.ndarray, expected: tuple[Any, ...], meaning: str = "") -> None:
    """Require ``array.shape == expected`` exactly; ``meaning`` spells the expected shape in symbols."""
    if tuple(array.shape) != tuple(expected):
        spelled = f" = {meaning}" if meaning else ""
        raise ValueError(f"{name}: expected shape {tuple(expected)}{spelled}, got {array.shape}")


def check_grad_output(grad_output: Any, expected: tuple[int, ...]) -> np.ndarray:
    """The upstream gradient ``dO`` of a backward call: floating, of the output's shape ``expected = (*batch, L,
    Ev)`` exactly (clause ``gradient.value``); returned as float64. A non-floating dtype raises
    :class:`TypeError`, another shape :class:`ValueError`, each naming ``grad_output``, its shape and the output's."""
    array = np.asarray(grad_output)
    if not is_floating_dtype(array.dtype):
        raise TypeError(f"grad_output: expected a floating array of the output's shape (*batch, L, Ev) = "
                        f"{tuple(expected)}, got dtype {array.dtype} (shape {array.shape})")
    check_shape("grad_output", array, expected, "(*batch, L, Ev), the output's shape")
    return np.asarray(array, dtype=np.float64)


def check_positive_real(name: str, value: Any) -> float:
    """``value`` must be a finite real number > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a finite real number > 0, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name}: expected a finite real number > 0, got {number}")
    return number


def check_window(window: Any) -> tuple[int | None, int | None] | None:
    """``window``: None, or a pair ``(left, right)`` of integers >= 0 or None (that side unbounded) (clause
    ``window.index-rule``)."""
    if window is None:
        return None
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise ValueError(f"window: expected None or a pair (left, right) of integers >= 0 or None, got {window!r}")
    sides = []
    for name, side in zip(("left", "right"), window):
        if side is None:
            sides.append(None)
            continue
        if isinstance(side, (bool, np.bool_)) or not isinstance(side, numbers.Integral):
            raise ValueError(f"window: {name} must be an integer >= 0 or None (unbounded), got {side!r} "
                             f"({type(side).__name__})")
        if side < 0:
            raise ValueError(f"window: {name} must be an integer >= 0 or None (unbounded), got {side}; a window of "
                             f"W keys that ends at the query's own position is (W - 1, 0)")
        sides.append(int(side))
    return sides[0], sides[1]


def check_kv_lengths(kv_lengths: Any, batch: tuple[int, ...], S: int) -> np.ndarray:
    """``kv_lengths``: integers ``0 <= n_b <= S``, shape ``(B,)`` with ``B`` the batch dim just before the head axis
    (``batch[-2]``: query ``(..., B, H, L, E)``); returned as int64 ``(B,)`` (clause ``lengths.index-rule``)."""
    array = np.asarray(kv_lengths)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"kv_lengths: expected integers (the valid keys of each batch entry), got dtype "
                         f"{array.dtype} (shape {array.shape})")
    if len(batch) < 2:
        raise ValueError(f"kv_lengths: needs the batch axis before the head axis, inputs (..., B, H, L, E) with at "
                         f"least 4 dims; the batch dims broadcast to {batch}")
    if array.shape != (batch[-2],):
        raise ValueError(f"kv_lengths: expected shape (B,) = ({batch[-2]},), one length per entry of the batch axis "
                         f"before the heads (batch dims {batch}), got shape {array.shape}")
    outside = (array < 0) | (array > S)
    if outside.any():
        raise ValueError(f"kv_lengths: each length must lie in 0..S = 0..{S}, got {array.tolist()}")
    return array.astype(np.int64)


def check_per_head(name: str, values: Any, batch: tuple[int, ...], what: str) -> np.ndarray:
    """Finite floats ``(H_q,)`` or ``(B, H_q)``, one per query head, as float64; ``what`` names one of them (a slope).

    ``batch`` is the broadcast batch shape of the call, ``(..., H_q)`` with the heads on axis -3 of
    the arrays; per-batch values line up from the right, ``B`` being the batch axis just before the
    heads (``batch[-2]``, or 1 to share them across it).
    """
    array = as_float64(name, values)
    if not batch:
        raise ValueError(f"{name}: needs a head axis, query (..., H_q, L, E) with at least 3 dims; the call has "
                         f"no batch dims ({name} shape {array.shape})")
    heads = batch[-1]
    expected = f"(H_q,) = ({heads},)" + (f" or (B, H_q) = ({batch[-2]}, {heads})" if len(batch) >= 2 else "")
    fits = array.ndim in (1, 2) and array.ndim <= len(batch) and array.shape[-1] == heads \
        and (array.ndim == 1 or array.shape[0] in (1, batch[-2]))
    if not fits:
        raise ValueError(f"{name}: expected shape {expected}, one {what} per query head (axis -3 of the batch "
                         f"dims {batch}), got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(n) for n in np.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite {what}s, got {array[where]} at index {where} "
                         f"(dtype {np.asarray(values).dtype})")
    return array


def check_alibi_slopes(alibi_slopes: Any, batch: tuple[int, ...]) -> np.ndarray:
    """``alibi_slopes``: finite floats ``(H_q,)`` or ``(B, H_q)`` (clause ``alibi.formula``), as float64
    (:func:`check_per_head`)."""
    return check_per_head("alibi_slopes", alibi_slopes, batch, "slope")


def check_sinks(sinks: Any, batch: tuple[int, ...]) -> np.ndarray:
    """``sinks``: finite floats ``(H_q,)`` or ``(B, H_q)``, one logit per query head (clause ``sinks.formula``), as
    float64 (:func:`check_per_head`)."""
    return check_per_head("sinks", sinks, batch, "sink")

def _join(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
