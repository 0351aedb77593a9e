"""The named departures of ``mha``: the heads' order and split, their scale, the biases, where keys come from.

Each is the reference of multi-head attention (:func:`~kqv.conformance.kinds.mha.bound.mha_expectation`, clause
``attention.accuracy``) on changed weights, so its bound is exactly the reference's: heads concatenated in reverse
order are the spec with the row blocks of ``W_O`` reversed, heads taking every h-th column the spec with the
columns of ``W_Q``, ``W_K``, ``W_V`` permuted, and so on. The departures of the mask, the causal rule and the
precision are those ``sdpa`` has too (:mod:`.shared`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..declaration import MASKED_ROWS
from ..kinds.mha.bound import mha_expectation
from ..kinds.mha.call import output
from ..kinds.mha.case import MhaCase, MhaInputs
from ..profiles import WIDTH_TILES
from ..tolerance import Precision
from . import shared
from .entry import Catalogue, Entries, Prediction

ENTRIES = Entries()
departure = ENTRIES.departure
PROBE_SEED = 20240607


@dataclass(frozen=True)
class MhaJudging:
    """What an ``mha`` backend is judged under (as :class:`~.sdpa_judging.SdpaJudging`)."""

    precision: Precision
    alignment: str
    conventions: tuple[str, ...]
    accumulation: str

    def predict(self, inputs: MhaInputs, precision: Precision | None = None, scale: float | None = None) -> Prediction:
        """The reference on ``inputs`` and its bound, one option per convention of a row that keeps no key."""
        options = []
        for convention in self.conventions:
            judged = mha_expectation(inputs, precision or self.precision, convention, self.alignment, scale)
            options.append((judged.expected, judged.bound))
            if not np.any(judged.empty):
                break
        return Prediction(tuple(options))


def observe(backend: Any, case: MhaCase) -> tuple[np.ndarray, MhaInputs, MhaJudging]:
    inputs = case.build()
    result = output(backend, inputs)
    declaration = backend.declaration
    conventions = (declaration.masked_rows,) if declaration.masked_rows else MASKED_ROWS
    return result, inputs, MhaJudging(Precision.of(case.dtype, declaration.accumulation), declaration.alignment,
                                      conventions, declaration.accumulation)


def correct(inputs: MhaInputs, judging: MhaJudging) -> Prediction:
    return judging.predict(inputs)


def probes(case: MhaCase, declaration: Any) -> list[MhaCase]:
    """kqv's canonical probes beside a failing case: its dtype, biases, mask and causal flag with ``B = 2``,
    ``L = 7, S = 11`` (``L = S = 9`` for self-attention), ``d_model = 16``, two heads of ``d_k = 8`` and ``d_v = 6``
    (8 where the backend declares no other), distinct heads; then without its mask, and without ``is_causal``."""
    cross = declaration.cross_lengths and not case.self_attention
    d_v = 6 if declaration.value_width and not declaration.heads_split_model else 8
    probe = dataclasses.replace(case, B=2, L=7 if cross else 9, S=11 if cross else 9, d_model=16, num_heads=2, d_k=8,
                                d_v=d_v, weights="normal", empty_rows=False, seed=PROBE_SEED)
    found = [probe]
    if case.mask != "none":
        found.append(dataclasses.replace(probe, mask="none"))
    if case.is_causal:
        found.append(dataclasses.replace(probe, is_causal=False))
    return found


def _heads(inputs: MhaInputs) -> tuple[int, int, int]:
    """``(h, d_k, d_v)``."""
    h = inputs.num_heads
    return h, inputs.w_q.shape[-1] // h, inputs.w_v.shape[-1] // h


@departure("heads concatenated in reverse", "the heads are concatenated in reverse order before W_O")
def heads_reversed(inputs, judging):
    """``Concat(head_h, ..., head_1) W_O``: the spec with the row blocks of ``W_O`` reversed (clause ``mha.concat``)."""
    h, _, d_v = _heads(inputs)
    if h < 2:
        return None
    w_o = inputs.w_o.reshape(h, d_v, -1)[::-1].reshape(h * d_v, -1)  # (h*d_v, d_model), blocks reversed
    return judging.predict(inputs.replace(w_o=w_o))


@departure("heads interleaved", "head i takes every h-th column (i, i + h, ...) of the projections instead of the "
           "block i*d_k:(i+1)*d_k")
def heads_interleaved(inputs, judging):
    """The spec with the columns of ``W_Q``, ``W_K``, ``W_V`` (and their biases) permuted: column ``i d + f`` is the
    old column ``f h + i`` (clause ``mha.split``)."""
    h, d_k, d_v = _heads(inputs)
    if h < 2:
        return None
    columns = {d: np.concatenate([np.arange(i, h * d, h) for i in range(h)]) for d in (d_k, d_v)}  # (h*d,)
    changes = {}
    for name, d in (("q", d_k), ("k", d_k), ("v", d_v)):
        changes[f"w_{name}"] = getattr(inputs, f"w_{name}")[:, columns[d]]
        bias = getattr(inputs, f"b_{name}")
        changes[f"b_{name}"] = None if bias is None else bias[columns[d]]
    return judging.predict(inputs.replace(**changes))


@departure("scale 1/sqrt(d_model)", "every head is scaled by 1/sqrt(d_model) instead of 1/sqrt(d_k)")
def scale_d_model(inputs, judging):
    """``head_i = softmax(Q_i K_i^T / sqrt(d_model)) V_i`` (clause ``mha.head``)."""
    return judging.predict(inputs, scale=1.0 / np.sqrt(inputs.x_q.shape[-1]))


@departure("bias dropped", "the bias {detail} is taken and never added")
def bias_dropped(inputs, judging):
    """``x W`` instead of ``x W + b`` for one of ``b_Q``, ``b_K``, ``b_V``, ``b_O`` (clauses ``projection.*``,
    ``mha.output-projection``)."""
    for name in ("q", "k", "v", "o"):
        if getattr(inputs, f"b_{name}") is not None:
            yield f"b_{name.upper()}", judging.predict(inputs.replace(**{f"b_{name}": None}))


@departure("keys and values from x_q", "keys and values are projected from x_q instead of x_kv (self-attention only)")
def keys_from_queries(inputs, judging):
    """``K = x_q W_K``, ``V = x_q W_V`` (clause ``mha.cross-attention``)."""
    if inputs.x_kv is inputs.x_q:
        return None
    if inputs.attn_mask is not None and inputs.x_kv.shape[-2] != inputs.x_q.shape[-2]:
        return None  # the mask's S no longer fits
    return judging.predict(inputs.replace(x_kv=inputs.x_q))


@departure("head dim truncated to a tile", "each head uses only the first {detail} features of its query and key (the "
           "scale still 1/sqrt(d_k))")
def head_dim_truncated(inputs, judging):
    """The spec with each head's columns of ``W_Q`` and ``b_Q`` from ``T`` on set to 0, for each tile ``T < d_k``
    (clause ``attention.tile-boundaries``)."""
    h, d_k, _ = _heads(inputs)
    for tile in (size for size in WIDTH_TILES if size < d_k):
        w_q = inputs.w_q.reshape(inputs.w_q.shape[0], h, d_k).copy()  # (d_model, h, d_k)
        w_q[..., tile:] = 0
        b_q = None if inputs.b_q is None else inputs.b_q.reshape(h, d_k).copy()  # (h, d_k)
        if b_q is not None:
            b_q[:, tile:] = 0
        cut = inputs.replace(w_q=w_q.reshape(inputs.w_q.shape), b_q=None if b_q is None else b_q.reshape(-1))
        yield str(tile), judging.predict(cut)


# Half-precision accumulation shows in sums of thousands of equal terms (a float16 sum stops at 2048), which no mha
# case draws: left to sdpa, whose cases have identical keys.
shared.register(ENTRIES, leave_out=("half-precision accumulation",))

CATALOGUE = Catalogue("mha", tuple(ENTRIES), observe, correct, probes)
