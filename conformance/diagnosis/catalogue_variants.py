"""The named departures of the variants of ``sdpa``: the window's sides, where the cap goes, the sign and order of
the ALiBi slopes. Each is the reference with the variant's parameter changed (``inputs.variants``), so its bound is
the reference's (clauses ``window.index-rule``, ``softcap.formula``, ``alibi.formula``, ``alibi.head-order``)."""

from __future__ import annotations

import numpy as np

from ..kinds.sdpa.case import SdpaInputs
from ..variants.alibi import nested
from .entry import Entries

ENTRIES = Entries()
departure = ENTRIES.departure


def _with(inputs: SdpaInputs, name: str, parameter) -> SdpaInputs:
    """The call with the parameter of variant ``name`` replaced."""
    return inputs.replace(variants=tuple((n, parameter if n == name else p) for n, p in inputs.variants))


@departure("window off by one", "the sliding window keeps one key more or less on a side ({detail})")
def window_off_by_one(inputs, judging):
    """``(left, right)`` read as ``(left +- 1, right)`` or ``(left, right +- 1)`` (clause ``window.index-rule``)."""
    window = dict(inputs.variants).get("window")
    if window is None:
        return
    left, right = window
    for side, size in (("left", left), ("right", right)):
        if size is None:
            continue
        for step in (1, -1):
            if size + step < 0:
                continue
            moved = (size + step, right) if side == "left" else (left, size + step)
            yield f"{side} {'+' if step > 0 else '-'} 1", judging.predict(_with(inputs, "window", moved))


@departure("softcap before the scale", "the cap is applied to the raw dot product, then scaled: s c tanh(q.k / c) "
           "instead of c tanh(s q.k / c)")
def softcap_before_scale(inputs, judging):
    """``s c tanh(q.k / c)`` is the spec's cap with ``c' = s c``: ``c' tanh(s q.k / c')`` (clause
    ``softcap.formula``)."""
    cap = dict(inputs.variants).get("softcap")
    if cap is None:
        return None
    scale = inputs.scale if inputs.scale is not None else 1.0 / np.sqrt(inputs.query.shape[-1])
    return judging.predict(_with(inputs, "softcap", scale * cap)) if scale > 0 else None


@departure("softcap ignored", "softcap=c is taken and dropped: the scores are never capped")
def softcap_ignored(inputs, judging):
    """``x = s q.k`` (clause ``softcap.bounded``)."""
    return judging.predict(inputs.without("softcap")) if "softcap" in dict(inputs.variants) else None


@departure("ALiBi sign flipped", "the ALiBi bias is +m_h |i + o - j|: far keys win instead of near ones")
def alibi_sign_flipped(inputs, judging):
    """The slopes ``-m_h`` (clause ``alibi.formula``)."""
    slopes = dict(inputs.variants).get("alibi")
    if slopes is None:
        return None
    return judging.predict(_with(inputs, "alibi", nested(-np.asarray(slopes, dtype=np.float64))))


@departure("ALiBi slopes reversed across heads", "query head h gets the slope of head H_q - 1 - h")
def alibi_slopes_reversed(inputs, judging):
    """The slopes ``m[..., ::-1]`` (clause ``alibi.head-order``)."""
    slopes = dict(inputs.variants).get("alibi")
    if slopes is None:
        return None
    return judging.predict(_with(inputs, "alibi", nested(np.asarray(slopes, dtype=np.float64)[..., ::-1])))
