"""The self-check: the spec's derivations hold and the reference meets its oracle.

Each result names the clause ids it enforces. The reference is compared with the
mpmath oracle (50 digits) on seeded random cases; its error is judged against the
forward-error bound of :func:`_bound` (clause ``attention.accuracy``);
torch, where installed, must agree within twice that bound (clause ``attention.sdpa``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

UNIT_ROUNDOFF_FLOAT64 = 2.0**-53


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
    """Allowed float64 error of each output element (clause ``attention.accuracy``).

    With ``u = 2**-53``, ``A_ij = s sum_e |q_ie| |k_je|`` and ``x_ij`` the scores:
    each exponent is off by at most ``D_i = (E + 4) u max_j A_ij + 2 u max_j |x_ij - max_k x_ik|``,
    which moves each weight by a factor within ``exp(+-2 D_i)``; the sums add ``(S + 4) u``:
    ``|o_ic - exact| <= (expm1(2 D_i) + (S + 4) u) sum_j p_ij |v_jc| + u |o_ic|``.
    """
    from kqv.reference import attention_weights

    u = UNIT_ROUNDOFF_FLOAT64
    source, e = key.shape[-2:]
    scale = 1.0 / np.sqrt(e)
    weights = attention_weights(query, key, attn_mask=mask, is_causal=is_causal)
    kept = weights > 0
    scores = scale * (query @ np.swapaxes(key, -1, -2))
    magnitudes = scale * (np.abs(query) @ np.swapaxes(np.abs(key), -1, -2))
    row_max = np.max(np.where(kept, scores, -np.inf), axis=-1, keepdims=True)
    spread = np.max(np.where(kept, np.abs(scores - row_max), 0.0), axis=-1)
    exponent_error = (e + 4) * u * np.max(np.where(kept, magnitudes, 0.0), axis=-1) + 2 * u * spread
    relative = np.expm1(2 * exponent_error) + (source + 4) * u
    output = weights @ value
    bound = relative[..., None] * (weights @ np.abs(value)) + u * np.abs(output)
    return np.maximum(bound, np.finfo(np.float64).tiny)


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
