"""Key lengths (padding, a static KV cache) as a variant of the ``sdpa`` contract (clauses ``lengths.*``).

Declared by ``kv_lengths=True`` (``kqv check --kv-lengths``), it adds the keyword ``kv_lengths``, an
int array ``(B,)`` with ``B`` the batch dim just before the heads, to the call and to the
reference: entry ``b`` keeps only keys ``j < n_b``, and bottom-right its causal rule and window
are aligned to its last valid key (offset ``n_b - L``). A case records the lengths as a tuple. The
checks are in ``kqv.conformance.variants.kv_lengths.checks``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st

from ...strategies import choice, integers
from ..base import Variant

ENTRIES = (1, 3)  # batch entries drawn when the case has no batch axis before the heads


def least_length(case) -> int:
    """The shortest length that leaves every query row a key: under the causal rule bottom-right ``L`` (query 0 sits
    at ``n - L``), with a window top-left ``L - left`` (the last query's window must reach a valid key), else 1."""
    least = 1
    if case.is_causal and case.alignment == "bottom-right":
        least = case.L
    window = case.variant("window")
    if window is not None and window[0] is not None and case.alignment == "top-left":
        least = max(least, case.L - window[0])
    return least


def keeps(lengths: tuple[int, ...], case) -> np.ndarray:
    """``(L, S)`` bool: the keys every batch entry keeps, so that a mask keeps one of them in each row: ``j`` below the
    shortest length and, bottom-right causal, ``j <= i + min(n) - L``."""
    shortest = min(lengths)
    kept = np.broadcast_to(np.arange(case.S) < shortest, (case.L, case.S))
    if case.is_causal and case.alignment == "bottom-right":
        kept = kept & (np.arange(case.S)[None, :] <= np.arange(case.L)[:, None] + shortest - case.L)
    return kept


def departs(case, declaration) -> bool:
    """Whether the backend declares a departure from clause ``lengths.offset`` at the case's dtype."""
    return declaration.expected_failure("lengths.offset", case.dtype) is not None


def draw(draw_from, case, declaration, profile, *, full: bool = False, empty: bool = False, any_offset: bool = False):
    """A length per entry of the batch axis before the heads, from :func:`least_length` to ``S`` (both ends drawn
    first); ``full``: every length ``S`` (clause ``lengths.full``); ``empty``: some entry of length 0 (clause
    ``lengths.empty-row``). A case with fewer than two batch dims gets them when the backend takes them and no
    budget of shapes holds its sizes. Bottom-right with a window every length is ``S``: the window was drawn for the
    offset ``S - L``, and shorter lengths would move it.

    A backend that declares a departure from ``lengths.offset`` at the case's dtype has it judged there
    (``any_offset``, the check of the offset, draws any length) and in ``lengths.full``; the other checks, under the
    causal rule or a window, keep to the lengths the offset cannot move: ``n_b = L``, where ``n_b - L`` is 0 as
    top-left (and ``0`` for an empty entry; with ``L > S`` no length but 0), so that a backend whose lengths carry
    their own alignment (ONNX: ``nonpad_kv_seqlen`` aligns bottom-right, its ``is_causal`` alone top-left) departs
    on the clauses of the offset only, as the caps the other checks draw keep a float32 cap (ONNX) on the clauses of
    the cap."""
    batch = case.batch
    full = full or (case.alignment == "bottom-right" and case.variant("window") is not None)
    if len(batch) < 2:
        counts = [count for count in declaration.batch_dims if count >= 2]
        if profile.shapes or not counts:
            return case
        heads = batch[-1:] or (1,)
        batch = (1,) * (min(counts) - 2) + (draw_from(integers(*ENTRIES)),) + heads
        case = dataclasses.replace(case, batch=batch)
    still = not (full or any_offset) and (case.is_causal or case.variant("window") is not None) \
        and departs(case, declaration)
    least = 0 if empty else case.L if still else least_length(case)
    if least > case.S and not full:
        return case
    length = st.one_of(choice((least, case.S)), integers(least, case.S))
    if full:
        lengths = [case.S] * batch[-2]
    elif still:
        lengths = [case.L if case.L <= case.S else 0] * batch[-2]
    else:
        lengths = [draw_from(length) for _ in range(batch[-2])]
    if empty:
        lengths[draw_from(integers(0, batch[-2] - 1))] = 0
    return dataclasses.replace(case, variants=case.variants + (("kv_lengths", tuple(int(n) for n in lengths)),))


VARIANT = Variant(
    name="kv_lengths",
    help="accepts kv_lengths, int (B,) with B the batch dim before the heads: entry b keeps keys j < kv_lengths[b], "
         "bottom-right aligned to its last valid key (padding, a static KV cache)",
    clauses=("lengths.index-rule", "lengths.offset", "lengths.full", "lengths.padding",
             "lengths.empty-row"),
    draw=draw,
    keywords=lambda lengths: {"kv_lengths": np.array(lengths, dtype=np.int64)},
    checks="kqv.conformance.variants.kv_lengths.checks",
    fits=lambda batch, **options: len(batch) >= 2,
    keeps=keeps,
    positional=True,
)
