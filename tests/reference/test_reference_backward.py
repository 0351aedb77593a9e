"""The analytic backward of the reference (clauses ``gradient.*``) against central finite differences of its forward.

The finite differences use nothing of the backward's formulas: ``(f(x + h) - f(x - h)) / (2h)`` of the loss
``f = sum(dO * O)`` with ``O`` the float64 forward, per input element, ``h = 1e-6``. Their error is the truncation
``c h^2``, estimated by Richardson as ``|FD(h) - FD(2h)|`` (which is ``3 |c| h^2``), plus the rounding of ``f``
divided by the step: ``|f|``'s rounding is at most ``16 (S + E + Ev) u sum(|dO|) max|V|``, and each difference
adds twice it over ``2h``. A backward that drops the ``- rowsum`` term of ``gradient.scores`` or transposes
``P`` in ``gradient.value`` fails by orders of magnitude more than that.
"""

from __future__ import annotations

import numpy as np
import pytest
from backward_helpers import U, GradCase, grad_cases

from kqv.conformance.compare import mismatch
from kqv.reference import attention_weights, scaled_dot_product_attention, scaled_dot_product_attention_backward
from kqv.reference.backward_stages import Gradients

H = 1e-6
CASES = grad_cases()


def _backward(case: GradCase, **extra) -> Gradients:
    call = case.with_inputs()
    return scaled_dot_product_attention_backward(call.pop("query"), call.pop("key"), call.pop("value"),
                                                 case.grad_output, **{**call, **extra})


def _loss(case: GradCase, **arrays: np.ndarray) -> float:
    return float(np.sum(case.grad_output * scaled_dot_product_attention(**case.with_inputs(**arrays))))


def _differences(case: GradCase, name: str, h: float) -> np.ndarray:
    """The central differences of the loss by each element of input ``name``, its shape."""
    array = case.inputs()[name]
    result = np.empty(array.shape)
    for index in np.ndindex(array.shape):
        plus, minus = array.copy(), array.copy()
        plus[index] += h
        minus[index] -= h
        step = plus[index] - minus[index]  # the step actually taken, exactly
        result[index] = (_loss(case, **{name: plus}) - _loss(case, **{name: minus})) / step
    return result


def _against_differences(case: GradCase, gradients: Gradients) -> list:
    """The mismatches of ``gradients`` with the central differences, one per input that is off."""
    S, E = case.key.shape[-2], case.key.shape[-1]
    rounding = 16 * (S + E + case.value.shape[-1]) * U * np.sum(np.abs(case.grad_output)) * np.max(np.abs(case.value))
    found = []
    for name in case.inputs():
        fine, coarse = _differences(case, name, H), _differences(case, name, 2 * H)
        bound = np.abs(fine - coarse) + 2 * rounding / H
        off = mismatch(getattr(gradients, name), fine, bound, what=f"d{name} of {case}")
        if off is not None:
            found.append(off)
    return found


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_backward_meets_finite_differences(case: GradCase) -> None:
    """Every option: masks with fully masked rows (zeros, uniform), both causal alignments, a negative scale,
    broadcast batch dims, GQA, window, softcap, ALiBi, sinks (with their own gradient) and key lengths."""
    gradients = _backward(case)
    for name, array in case.inputs().items():
        assert getattr(gradients, name).shape == array.shape, name
        assert getattr(gradients, name).dtype == np.float64, name
    assert (gradients.sinks is None) == (case.sinks is None)
    found = _against_differences(case, gradients)
    assert not found, "\n".join(map(str, found))


def _weights_and_scale(case: GradCase) -> tuple[np.ndarray, float]:
    return attention_weights(case.query, case.key), 1 / np.sqrt(case.query.shape[-1])


def _without_row_sum(case: GradCase) -> Gradients:
    """The classic bug: ``dA = P * dP``, the ``- rowsum(dP * P)`` of the softmax Jacobian dropped."""
    weights, s = _weights_and_scale(case)
    d_scores = weights * (case.grad_output @ case.value.T)
    return Gradients(s * d_scores @ case.key, s * d_scores.T @ case.query, weights.T @ case.grad_output)


def _untransposed_value(case: GradCase) -> Gradients:
    """``dV = P dO`` where ``P^T dO`` is meant (it has the right shape when ``L == S``)."""
    right = _backward(case)
    weights, _ = _weights_and_scale(case)
    return right._replace(value=weights @ case.grad_output)


def _square_case() -> GradCase:
    rng = np.random.default_rng(7)
    return GradCase("L = S = 3", *(rng.standard_normal((3, 3)) for _ in range(3)), rng.standard_normal((3, 3)))


@pytest.mark.parametrize("broken", [_without_row_sum, _untransposed_value])
def test_finite_differences_catch_a_broken_backward(broken) -> None:
    case = _square_case()
    assert not _against_differences(case, _backward(case))
    found = _against_differences(case, broken(case))
    assert found
    assert found[0].error > 1e3 * found[0].bound, found[0]


def _empty_row_case(masked_rows: str) -> GradCase:
    return next(case for case in CASES if case.name == f"bool mask, {masked_rows}")


@pytest.mark.parametrize("masked_rows", ["zeros", "uniform"])
def test_a_fully_masked_row_has_finite_gradients(masked_rows: str) -> None:
    """Clause gradient.masked-row: dQ of the row is 0; dK and dV are those of the other rows (the call without
    the row), plus under uniform the row's dO / S on every value row."""
    case = _empty_row_case(masked_rows)
    gradients = _backward(case)
    assert all(np.isfinite(g).all() for g in gradients[:3])
    assert np.array_equal(gradients.query[1], np.zeros(3))
    rows = [0, 2]  # the rows that keep a key
    others = scaled_dot_product_attention_backward(case.query[rows], case.key, case.value, case.grad_output[rows],
                                                   attn_mask=case.options["attn_mask"][rows])
    np.testing.assert_allclose(gradients.query[rows], others.query, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(gradients.key, others.key, rtol=1e-14, atol=1e-15)
    share = case.grad_output[1] / 4 if masked_rows == "uniform" else 0.0
    np.testing.assert_allclose(gradients.value, others.value + share, rtol=1e-14, atol=1e-15)


def test_under_nan_only_the_row_s_query_gradient_is_nan() -> None:
    """The reference's choice for ``masked_rows="nan"``: the row's dQ is NaN, dK and dV are those of zeros."""
    case = _empty_row_case("zeros")
    nan, zeros = _backward(case, masked_rows="nan"), _backward(case)
    assert np.isnan(nan.query[1]).all()
    np.testing.assert_array_equal(np.delete(nan.query, 1, axis=0), np.delete(zeros.query, 1, axis=0))
    np.testing.assert_array_equal(nan.key, zeros.key)
    np.testing.assert_array_equal(nan.value, zeros.value)


def test_a_row_with_only_its_sink_has_finite_gradients() -> None:
    case = next(case for case in CASES if case.name == "sinks")
    gradients = _backward(case)
    assert all(np.isfinite(g).all() for g in gradients)
    assert np.array_equal(gradients.query[:, 1], np.zeros((2, 3)))  # row 1 keeps no key, under every head


def test_causal_keys_hidden_from_every_query_get_no_gradient() -> None:
    """With L < S top-left, the keys past the last query are hidden from all of them: no gradient leaks there."""
    rng = np.random.default_rng(3)
    query, key, value = rng.standard_normal((2, 3)), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    gradients = scaled_dot_product_attention_backward(query, key, value, rng.standard_normal((2, 2)), is_causal=True)
    assert np.array_equal(gradients.key[2:], np.zeros((3, 3)))
    assert np.array_equal(gradients.value[2:], np.zeros((3, 2)))
    assert np.abs(gradients.key[:2]).min() > 0


@pytest.mark.parametrize("masked_rows", ["zeros", "nan", "uniform"])
def test_no_keys_at_all(masked_rows: str) -> None:
    rng = np.random.default_rng(4)
    query, key, value = rng.standard_normal((3, 2)), np.zeros((0, 2)), np.zeros((0, 4))
    gradients = scaled_dot_product_attention_backward(query, key, value, rng.standard_normal((3, 4)),
                                                      masked_rows=masked_rows)
    assert gradients.key.shape == (0, 2) and gradients.value.shape == (0, 4)
    assert np.isnan(gradients.query).all() if masked_rows == "nan" else np.array_equal(gradients.query, np.zeros((3, 2)))


@pytest.mark.parametrize(("grad_output", "error", "words"), [
    (np.zeros((3, 3)), ValueError, r"grad_output: expected shape \(3, 2\) = \(\*batch, L, Ev\), the output's shape, "
                                   r"got \(3, 3\)"),
    (np.zeros((1, 3, 2)), ValueError, r"grad_output: expected shape \(3, 2\).*got \(1, 3, 2\)"),
    (np.zeros((3, 2), dtype=np.int64), TypeError, r"grad_output: expected a floating array of the output's shape "
                                                  r"\(\*batch, L, Ev\) = \(3, 2\), got dtype int64 \(shape \(3, 2\)\)"),
    ([[True, False]] * 3, TypeError, r"grad_output: .* got dtype bool \(shape \(3, 2\)\)"),
])
@pytest.mark.parametrize("method", ["dense", "blocked"])
def test_a_bad_upstream_gradient_is_named(grad_output, error, words, method) -> None:
    case = CASES[0]
    with pytest.raises(error, match=words):
        scaled_dot_product_attention_backward(case.query, case.key, case.value, grad_output, method=method)


@pytest.mark.parametrize(("options", "words"), [
    ({"dropout_p": 0.1}, "dropout_p must be 0.0"),
    ({"method": "dense", "block_size": (2, 2)}, "only the blocked method takes a block size"),
    ({"method": "sparse"}, "method: expected one of"),
    ({"masked_rows": "skip"}, "masked_rows: expected one of"),
])
def test_bad_options_are_named(options, words) -> None:
    case = CASES[0]
    with pytest.raises(ValueError, match=words):
        scaled_dot_product_attention_backward(case.query, case.key, case.value, case.grad_output, **options)
