"""Decoding with a KV cache (clause ``cache.decode``): the rows of a causal call, a few at a time.

A model that generates text attends each new query row (or a chunk of them) to the keys and values
cached so far. Clause ``cache.decode`` says this reproduces the rows of the bottom-right causal
call on the whole sequence; the check feeds the backend the rows that way and compares each step
with those rows. Bottom-right backends get chunks of rows with ``is_causal`` (a single row without
it, unless the backend is causal-only: on one row it keeps every key of the prefix anyway); top-left
ones single rows without a mask (one row against its own prefix needs none), which a causal-only
top-left backend cannot take. With ``kv_lengths`` declared, each step is also made on the cache
padded to ``S`` with fresh numbers, the lengths its prefix.
"""

from __future__ import annotations

import numpy as np

from ...registry import agree, check, needs
from ...tolerance import Precision
from .bound import sdpa_expectation
from .call import expectation, fresh, output
from .case import VALUES
from .strategy import cases

MOST_STEPS = 4  # calls per example, besides their padded twins


def steps(case, bottom_right: bool, first: int) -> list[tuple[int, int]]:
    """The query rows ``[t0, t1)`` of each call: bottom-right, the rows from ``first`` cut at random into at most
    :data:`MOST_STEPS` chunks; top-left, single rows (the first, the last and random ones)."""
    rng = np.random.default_rng([case.seed, 95])
    rows = case.L - first
    if bottom_right:
        cuts = np.sort(rng.choice(np.arange(1, rows), size=min(rows - 1, MOST_STEPS - 1), replace=False)) \
            if rows > 1 else np.array([], dtype=int)
        edges = [first] + [first + int(c) for c in cuts] + [case.L]
        return list(zip(edges[:-1], edges[1:]))
    picked = {first, case.L - 1} | {int(t) for t in rng.integers(first, case.L, size=MOST_STEPS - 2)}
    return [(t, t + 1) for t in sorted(picked)]


def _compare(backend, case, step, whole, t0: int, t1: int, what: str) -> None:
    got, judged = output(backend, step), expectation(backend, step, case)
    rows = whole.expected[..., t0:t1, :]  # (..., t1 - t0, Ev): those rows of the causal call
    agree(got, rows, judged.bound + np.abs(judged.expected - rows), what=what)


def _unbudgeted(declaration) -> str | None:
    if not declaration.shapes:
        return None
    return (f"the backend compiles per shape (shapes={declaration.shapes}): each decoding step is a new shape, "
            f"outside its budget")


def _decodable(declaration) -> str | None:
    if not declaration.cross_lengths:
        return "decoding calls have fewer query rows than cached keys (L < S), and the backend declares L = S only " \
               "(cross_lengths=False)"
    if not declaration.non_causal and declaration.alignment == "top-left":
        return "a top-left backend decodes one row without is_causal (its keys are its own prefix), and the backend " \
               "declares causal calls only (non_causal=False)"
    return None


@check("cache.decode", "sdpa", cases(causal=(True,), values=VALUES, min_length=2, other_variants=False),
       requires=(needs("causal", "is_causal"), _unbudgeted, _decodable))
def decode(backend, case, context):
    """Query rows fed a few at a time against the growing cache give the rows of the bottom-right causal call."""
    full = case.build()
    declaration = backend.declaration
    whole = sdpa_expectation(full, Precision.of(case.dtype, declaration.accumulation), "bottom-right")
    shift = case.S - case.L  # query t sits at key t + S - L
    first = max(0, -shift)  # the rows before it keep no key in the causal call
    if first >= case.L:
        return
    bottom_right = declaration.alignment == "bottom-right"
    padded = declaration.kv_lengths and len(case.batch) >= 2
    for t0, t1 in steps(case, bottom_right, first):
        prefix = t1 + shift  # the keys cached when rows t0..t1-1 are decoded
        causal = t1 - t0 > 1 or not declaration.non_causal
        step = full.replace(query=full.query[..., t0:t1, :], key=full.key[..., :prefix, :],
                            value=full.value[..., :prefix, :], is_causal=causal)
        _compare(backend, case, step, whole, t0, t1, f"query rows {t0}..{t1 - 1} against the first {prefix} keys and "
                                                     f"values (against those rows of the bottom-right causal call)")
        if padded:
            key, value = np.array(full.key, copy=True), np.array(full.value, copy=True)
            key[..., prefix:, :] = fresh(case, key[..., prefix:, :].shape, 96, magnitude=10.0)
            value[..., prefix:, :] = fresh(case, value[..., prefix:, :].shape, 97, magnitude=10.0)
            lengths = (prefix,) * case.batch[-2]
            twin = step.replace(key=key, value=value, variants=(("kv_lengths", lengths),))
            _compare(backend, case, twin, whole, t0, t1, f"query rows {t0}..{t1 - 1} against the cache padded to "
                                                         f"{case.S} keys, kv_lengths={list(lengths)}")
