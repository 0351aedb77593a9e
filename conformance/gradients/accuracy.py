"""Gradient checks judged against the float64 reference's backward, one gradient or one step of the chain at a time.

Each draws the cases where its clause is what matters and compares the backend's gradients with the reference's
within the bound of clause ``gradient.accuracy`` (:mod:`kqv.conformance.kinds.sdpa.backward_bound`):

- ``gradient.value``: ``dV = P^T dO``, with ``L = S`` in half the cases (where ``P dO`` has the right shape too);
- ``gradient.query`` and ``gradient.key``: ``dQ = s dA K`` and ``dK = s dA^T Q``, with every scale;
- ``gradient.weights``: ``dP = dO V^T``, seen through an upstream gradient orthogonal to every value row, for
  which ``dP = 0`` and so ``dA = 0``: ``dQ`` and ``dK`` are (the rounding of ``dO`` aside) zero, ``dV`` is not;
- ``gradient.scores``: ``dA = P * (dP - rowsum(dP * P))``, seen through the row sums of ``dA``, which are zero
  (the softmax Jacobian's rows sum to zero), so that the key gradients sum to zero over the keys:
  ``sum_j dK_j = s sum_i (sum_j dA_ij) Q_i = 0``;
- ``gradient.masked-row``: rows that keep no key, under the declared convention;
- ``gradient.accuracy``: all three on every value profile.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st

from ..kinds.sdpa.accuracy import rows_can_empty
from ..kinds.sdpa.bound import prepared
from ..kinds.sdpa.case import MASKS, VALUES
from ..kinds.sdpa.strategy import cases
from ..registry import agree, check, needs
from .call import expectation, gradients, judge, upstream
from ..dtypes import UNIT_ROUNDOFF, round_to

REQUIRES = (needs("backward", "backward pass"),)
FACET = "backward"  # what the reports and the docs group these checks under (Check.variant)
U64 = UNIT_ROUNDOFF["float64"]


class Either:
    """The strategy of a check that draws from several :func:`~kqv.conformance.kinds.sdpa.strategy.cases`, the first
    one first (hypothesis shrinks towards it)."""

    def __init__(self, *choices) -> None:
        self.choices = choices

    def __call__(self, declaration, dtype, profile):
        return st.one_of(*(choice(declaration, dtype, profile) for choice in self.choices))

    def draws_explicit_scales(self) -> bool:
        return any(choice.draws_explicit_scales() for choice in self.choices)


_common = dict(masks=MASKS, causal=(False, True), scales=True)


@check("gradient.value", "sdpa", Either(cases(equal_lengths=True, **_common), cases(**_common)), requires=REQUIRES,
       variant=FACET)
def value(backend, case, context):
    """dV = P^T dO: each key row collects the upstream rows weighted by its column of P (L = S in half the cases)."""
    judge(backend, case, ("value",))


@check("gradient.query", "sdpa", cases(**_common), requires=REQUIRES, variant=FACET)
def query(backend, case, context):
    """dQ = s dA K, with every mask kind, causal flag and scale the backend takes."""
    judge(backend, case, ("query",))


@check("gradient.key", "sdpa", Either(cases(equal_lengths=True, **_common), cases(**_common)), requires=REQUIRES,
       variant=FACET)
def key(backend, case, context):
    """dK = s dA^T Q, with every mask kind, causal flag and scale the backend takes."""
    judge(backend, case, ("key",))


def _wide_values(case, declaration, profile):
    """The case with more value features than keys (``Ev = S + 1`` at least), so that an upstream row can be
    orthogonal to every value row; a backend that needs ``Ev = E`` gets both, a budget of shapes keeps its own."""
    if profile.shapes or case.Ev > case.S:
        return case
    width = case.S + 1
    return dataclasses.replace(case, Ev=width, E=case.E if declaration.value_width else width)


class WideValues:
    """:func:`_wide_values` of the cases of ``cases(**options)``."""

    def __init__(self, **options) -> None:
        self.cases = cases(**options)

    def __call__(self, declaration, dtype, profile):
        return self.cases(declaration, dtype, profile).map(lambda case: _wide_values(case, declaration, profile))

    def draws_explicit_scales(self) -> bool:
        return self.cases.draws_explicit_scales()


def orthogonal_upstream(case, inputs, backend) -> np.ndarray:
    """``dO`` with every row orthogonal to every value row its query reads: ``G (I - V^+ V)``, ``G`` standard normal,
    rounded to the case's dtype (so ``dO V^T`` is zero up to that rounding)."""
    call = prepared(inputs, backend.declaration.alignment)
    value = np.broadcast_to(call.value, call.batch + call.value.shape[-2:])  # (*batch, S, Ev), heads mapped
    drawn = upstream(case, inputs).astype(np.float64)  # (*batch, L, Ev)
    projected = drawn - drawn @ np.linalg.pinv(value) @ value  # (*batch, L, Ev): the part orthogonal to V's rows
    scale = np.max(np.abs(projected), axis=-1, keepdims=True)
    return round_to(projected / np.where(scale > 0, scale, 1.0), case.dtype)  # rows of largest entry 1


@check("gradient.weights", "sdpa", WideValues(masks=MASKS, causal=(False, True), other_variants=False),
       requires=REQUIRES, variant=FACET)
def weights(backend, case, context):
    """dP = dO V^T: an upstream gradient orthogonal to every value row gives dP = 0, so dQ = dK = 0 (to the rounding
    of dO), while dV = P^T dO is not zero."""
    inputs = case.build()
    judge(backend, case, ("query", "key", "value"), inputs, orthogonal_upstream(case, inputs, backend),
          about=" for dO orthogonal to every value row (dP = dO V^T = 0)")


# other_variants=False: a soft cap (dA times 1 - tanh^2) and a sink (weights that sum to less than 1) make the rows of
# dA sum to something else than zero.
@check("gradient.scores", "sdpa", cases(masks=MASKS, causal=(False, True), values=("normal", "large", "ties"),
                                        scales=True, other_variants=False), requires=REQUIRES, variant=FACET)
def scores(backend, case, context):
    """The rows of dA = P * (dP - rowsum(dP * P)) sum to zero, so the key gradients sum to zero over the keys."""
    inputs = case.build()
    grad_output = upstream(case, inputs)
    got = gradients(backend, inputs, grad_output)
    expected, bound = expectation(backend, inputs, grad_output, case)
    total = np.sum(got.key, axis=-2)  # (..., E): sum_j dK_j
    allowed = np.sum(bound.key, axis=-2) + np.abs(np.sum(expected.key, axis=-2)) \
        + 2 * case.S * U64 * np.sum(np.abs(got.key), axis=-2)
    agree(total, 0.0, allowed, what="sum_j dK_j (zero when each row of dA sums to zero, as the softmax Jacobian's rows "
                                    "do)")


@check("gradient.masked-row", "sdpa",
       cases(masks=("bool", "float"), causal=(False, True), empty_rows=True, values=("normal", "large-values"),
             whole_rows=True),
       requires=REQUIRES + (rows_can_empty,), variant=FACET)
def masked_row(backend, case, context):
    """Rows that keep no key give finite gradients under the declared convention: dQ_i = 0, nothing to dK, and to dV
    nothing (zeros) or dO_i / S (uniform)."""
    judge(backend, case)


@check("gradient.accuracy", "sdpa", cases(values=VALUES, masks=MASKS, causal=(False, True), scales=True),
       requires=REQUIRES, variant=FACET)
def accuracy(backend, case, context):
    """dQ, dK and dV within the bound of the backward on every value profile (ties, zeros, identical keys, tiny and
    large values, scores past exp's overflow)."""
    judge(backend, case)
