"""The float64 backward within a stated bound of the mpmath oracle's (clauses ``gradient.*``).

The oracle runs the same stages backward at 50 digits (:func:`kqv.reference.oracle.oracle_sdpa_backward`); the
bound is ``backward_helpers.backward_bound``, a first-order model of the float64 rounding, 4 times over. Both forms
share the formulas, so this judges the float64 arithmetic; the finite differences and torch judge the formulas.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from backward_helpers import GradCase, backward_bound, grad_cases

from kqv.conformance.compare import mismatch
from kqv.reference import Gradients, scaled_dot_product_attention_backward
from kqv.reference.oracle import oracle_sdpa_backward

CASES = grad_cases(seed=1)


def _large_logits(case: GradCase) -> GradCase:
    return GradCase(f"{case.name}, query x 30", case.query * 30, case.key, case.value, case.grad_output,
                    case.options)


def _call(function, case: GradCase, **extra) -> Gradients:
    call = case.with_inputs()
    return function(call.pop("query"), call.pop("key"), call.pop("value"), case.grad_output, **{**call, **extra})


@pytest.mark.parametrize("case", CASES + [_large_logits(case) for case in CASES[:6]], ids=str)
def test_the_backward_is_within_the_bound_of_the_oracle(case: GradCase) -> None:
    got, exact, bound = _call(scaled_dot_product_attention_backward, case), _call(oracle_sdpa_backward, case), \
        backward_bound(case)
    assert set(bound) == {name for name, value in zip(Gradients._fields, exact) if value is not None}
    found = [mismatch(getattr(got, name), getattr(exact, name), bound[name], what=f"d{name} of {case}")
             for name in bound]
    assert not [off for off in found if off is not None], "\n".join(str(off) for off in found if off is not None)


def test_the_oracle_keeps_its_digits() -> None:
    case = CASES[0]
    exact = _call(oracle_sdpa_backward, case, as_mpf=True, dps=40)
    assert all(isinstance(element, mpmath.mpf) for gradient in exact[:3] for element in gradient.flat)
    assert exact.sinks is None


def test_the_oracle_follows_the_nan_convention_of_the_reference() -> None:
    case = next(case for case in CASES if case.name == "bool mask, zeros")
    got, exact = (_call(function, case, masked_rows="nan")
                  for function in (scaled_dot_product_attention_backward, oracle_sdpa_backward))
    assert np.isnan(exact.query[1]).all() and np.isfinite(np.delete(exact.query, 1, axis=0)).all()
    assert mismatch(got.query, exact.query, backward_bound(case)["query"]) is None


def test_the_gradient_of_keys_rounded_to_float32_is_outside_the_bound() -> None:
    """The bound is a float64 one: dQ computed from keys rounded to float32 is outside it."""
    case = CASES[0]
    exact, bound = _call(oracle_sdpa_backward, case), backward_bound(case)
    rounded = scaled_dot_product_attention_backward(case.query, case.key.astype(np.float32), case.value,
                                                    case.grad_output)
    assert mismatch(rounded.query, exact.query, bound["query"]) is not None
