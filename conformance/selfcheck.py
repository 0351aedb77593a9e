"""The self-check: the spec's derivations hold and the reference meets its oracle.

Each result names the clause ids it enforces. The reference is compared with the
mpmath oracle (50 digits) on seeded random cases; its error is judged against the
float64 bound of the tolerance model (:mod:`kqv.conformance.tolerance`, clause ``attention.accuracy``);
torch, where installed, must agree within twice that bound (clause ``attention.sdpa``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

@dataclass
class Result:
    clause: str
    status: str  # "passed", "failed" or "skipped"
    message: str


def _derivations() -> Iterator[Result]:
    from kqv.spec import CLAUSES, DerivationError

    for clause in CLAUSES.values():
        if clause.derivation is None:
            continue
        try:
            clause.derivation.check()
        except DerivationError as error:
            yield Result(clause.id, "failed", str(error))
        else:
            yield Result(clause.id, "passed", f"{len(clause.derivation.steps)} step(s) checked by sympy")


def _random_case(rng: np.random.Generator):
    batch = tuple(rng.integers(1, 3, size=rng.integers(0, 3)))
    length, source = (int(n) for n in rng.integers(1, 6, size=2))
    e, ev = (int(n) for n in rng.integers(1, 6, size=2))
    magnitude = 10.0 ** rng.uniform(-1, 2)
    query = rng.standard_normal(batch + (length, e)) * magnitude
    key = rng.standard_normal(batch + (source, e))
    value = rng.standard_normal(batch + (source, ev))
    mask = rng.random(batch + (length, source)) < 0.7
    mask[..., 0] = True
    return query, key, value, mask


def _bound(query, key, value, mask, is_causal=False) -> np.ndarray:
    """Allowed float64 error of each output element: the tolerance model at float64 (clause ``attention.accuracy``).

    :func:`kqv.conformance.kinds.sdpa.bound.sdpa_expectation` with ``u_s = u_a = 2**-53``; the same model
    judges every backend in ``kqv check``.
    """
    from .kinds.sdpa.bound import sdpa_expectation
    from .kinds.sdpa.case import SdpaInputs
    from .tolerance import Precision

    judged = sdpa_expectation(SdpaInputs(query, key, value, mask, is_causal), Precision.of("float64"))
    return np.maximum(judged.bound, np.finfo(np.float64).tiny)


def _oracle_agreement(seed: int, cases: int) -> Iterator[Result]:
    from kqv.reference import scaled_dot_product_attention
    from kqv.reference.oracle import oracle_sdpa

    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(cases):
        query, key, value, mask = _random_case(rng)
        is_causal = bool(rng.integers(0, 2))
        got = scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=is_causal)
        exact = oracle_sdpa(query, key, value, attn_mask=mask, is_causal=is_causal)
        bound = _bound(query, key, value, mask, is_causal)
        ratio = float(np.max(np.abs(got - exact) / bound)) if got.size else 0.0
        worst = max(worst, ratio)
        if ratio > 1.0:
            yield Result("attention.accuracy", "failed", f"reference error {ratio:.3g} x bound vs oracle "
                         f"(query {query.shape}, key {key.shape}, value {value.shape}, seed {seed})")
            return
    yield Result("attention.accuracy", "passed", f"{cases} cases vs mpmath oracle; worst error / bound = {worst:.3g}")


def _torch_agreement(seed: int, cases: int) -> Iterator[Result]:
    try:
        import torch
    except ImportError:
        yield Result("attention.sdpa", "skipped", "torch is not installed")
        return
    from kqv.reference import scaled_dot_product_attention

    rng = np.random.default_rng(seed + 1)
    worst = 0.0
    for _ in range(cases):
        query, key, value, mask = _random_case(rng)
        got = scaled_dot_product_attention(query, key, value, attn_mask=mask)
        expected = torch.nn.functional.scaled_dot_product_attention(
            *(torch.from_numpy(a) for a in (query, key, value)), attn_mask=torch.from_numpy(mask)
        ).numpy()
        # Each side is within the bound of the exact result, so they are within twice it of each other.
        bound = 2 * _bound(query, key, value, mask)
        worst = max(worst, float(np.max(np.abs(got - expected) / bound)) if got.size else 0.0)
    yield Result("attention.sdpa", "passed" if worst <= 1.0 else "failed",
                 f"{cases} cases vs torch {torch.__version__} float64; worst difference / (2 x bound) = {worst:.3g}")


CHECKS: dict[str, Callable[[int, int], Iterator[Result]]] = {
    "derivations": lambda seed, cases: _derivations(),
    "oracle": _oracle_agreement,
    "torch": _torch_agreement,
}


def run(seed: int = 0, cases: int = 50) -> list[Result]:
    """Run every self-check and return its results in order."""
    return [result for check in CHECKS.values() for result in check(seed, cases)]
