"""How an ``sdpa`` backend is observed for a diagnosis, and the helpers its departures' formulas share.

:class:`SdpaJudging` holds what the backend is judged under (the precision of its dtype and declared
accumulation, its causal alignment, the conventions a row that keeps no key may follow);
:meth:`SdpaJudging.predict` is the reference and bound of clause ``attention.accuracy`` on any inputs, so a
departure that is the spec on changed inputs (another scale, the mask inverted) gets its bound exactly.
A departure that changes the softmax itself builds its weights from the reference's scores
(:func:`scores_of`) and gets its bound from :func:`weighted`, the tolerance model applied to those weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from kqv.reference.prepare import Prepared
from kqv.reference.sdpa import masked_scores
from kqv.reference.stages import scores

from ..declaration import MASKED_ROWS
from ..kinds.sdpa.bound import prepared, sdpa_expectation, weighted_bound
from ..kinds.sdpa.call import output
from ..kinds.sdpa.case import SdpaCase, SdpaInputs
from ..tolerance import Precision, row_exponent_error
from .entry import Prediction

PROBE_SEED = 20240607  # the seed of every probe's arrays
PROBE_SIZES = {"L": 7, "S": 11, "E": 8, "Ev": 6}  # L != S, Ev != E, no tile: the layouts a bug may mix up differ


@dataclass(frozen=True)
class SdpaJudging:
    """What an ``sdpa`` backend is judged under: ``conventions`` are those a row that keeps no key may follow (the
    declared one, or any when undeclared)."""

    precision: Precision
    alignment: str
    conventions: tuple[str, ...]
    accumulation: str

    def predict(self, inputs: SdpaInputs, precision: Precision | None = None,
                alignment: str | None = None) -> Prediction:
        """The reference on ``inputs`` and its bound (clause ``attention.accuracy``), one option per convention."""
        options = []
        for convention in self.conventions:
            judged = sdpa_expectation(inputs, precision or self.precision, alignment or self.alignment, convention)
            options.append((judged.expected, judged.bound))
            if not np.any(judged.empty):
                break  # the conventions differ only on rows that keep no key
        return Prediction(tuple(options))


def observe(backend: Any, case: SdpaCase) -> tuple[np.ndarray, SdpaInputs, SdpaJudging]:
    """Call the backend once on ``case``: its output as float64, the inputs and the judging (a CheckFailure when it
    raises or returns the wrong shape)."""
    inputs = case.build()
    result = output(backend, inputs)
    declaration = backend.declaration
    conventions = (declaration.masked_rows,) if declaration.masked_rows else MASKED_ROWS
    judging = SdpaJudging(Precision.of(case.dtype, declaration.accumulation), declaration.alignment, conventions,
                          declaration.accumulation)
    return result, inputs, judging


def correct(inputs: SdpaInputs, judging: SdpaJudging) -> Prediction:
    return judging.predict(inputs)


def probes(case: SdpaCase, declaration: Any) -> list[SdpaCase]:
    """kqv's canonical probes beside a failing case: its dtype, batch dims, mask, causal flag, scale and variants
    with ``L = 7, S = 11, E = 8, Ev = 6`` (``L = S = 9``, ``Ev = E`` where the backend declares no other) and normal
    values; then the same without its mask, and without ``is_causal``, so that a departure that needs one of them
    is told from one that does not. A probe the reference rejects (key lengths past the new S) is left out."""
    sizes = dict(PROBE_SIZES)
    if not declaration.cross_lengths:
        sizes.update(L=9, S=9)
    if not declaration.value_width:
        sizes.update(Ev=sizes["E"])
    probe = dataclasses.replace(case, **sizes, values="normal", mask_pattern="random", empty_rows=False,
                                seed=PROBE_SEED)
    found = [probe]
    if case.mask != "none":
        found.append(dataclasses.replace(probe, mask="none"))
    if case.is_causal:
        found.append(dataclasses.replace(probe, is_causal=False))
    return [p for p in found if _valid(p, declaration.alignment)]


def _valid(case: SdpaCase, alignment: str) -> bool:
    try:
        prepared(case.build(), alignment)
    except (ValueError, TypeError):
        return False
    return True


def scores_of(inputs: SdpaInputs, judging: SdpaJudging) -> tuple[Prepared, np.ndarray]:
    """The reference's call and its masked scores ``x (*batch, L, S)`` (stages 1 to 3, ``-inf`` where a key is
    dropped), for a departure that changes what comes after them."""
    call = prepared(inputs, judging.alignment)
    return call, masked_scores(call)


def magnitudes(call: Prepared) -> np.ndarray:
    """``A = |s| |Q| |K|^T``, ``(*batch, L, S)``: the magnitudes the scores' errors scale with."""
    return np.broadcast_to(scores(np.abs(call.query), np.abs(call.key), abs(call.scale)), call.shape)


def weighted(call: Prepared, x: np.ndarray, weights: np.ndarray, precision: Precision, A: np.ndarray | None = None,
             M: np.ndarray | None = None, axis: int = -1) -> Prediction:
    """The output ``P V`` of a departure's weights ``P (*batch, L, S)``, normalised along ``axis``, and its bound:
    the tolerance model of :func:`~kqv.conformance.kinds.sdpa.bound.sdpa_bound` on the scores ``x`` it feeds to
    ``exp`` (magnitudes ``A``, biases ``M``: the reference's by default). Keys whose weight is exactly 0 (an
    exponent below -745) add no error, whatever the error of their exponent."""
    A = magnitudes(call) if A is None else A
    M = call.biases() if M is None else M
    counted = np.isfinite(x) & (weights != 0)
    E = call.query.shape[-1]
    if axis == -1:
        exponent = row_exponent_error(A, x, M, counted, E, precision)  # (*batch, L)
    else:  # normalised over the queries: one error per column, the largest for every row
        swap = (lambda a: np.swapaxes(a, -1, -2))
        columns = row_exponent_error(swap(A), swap(x), swap(M), swap(counted), E, precision)  # (*batch, S)
        exponent = np.broadcast_to(np.max(columns, axis=-1, keepdims=True, initial=0.0), call.shape[:-1])
    value = np.broadcast_to(call.value, call.batch + call.value.shape[-2:])  # (*batch, S, Ev), heads mapped
    with np.errstate(invalid="ignore", over="ignore"):
        expected = weights @ value  # (*batch, L, Ev)
        bound = weighted_bound(exponent, weights, value, np.isfinite(x), precision, x.shape[axis])
    return Prediction.of(expected, bound)
