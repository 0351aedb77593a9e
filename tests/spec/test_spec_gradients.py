"""The gradient clauses: each closed form is checked against sympy's derivative, and a wrong one fails."""

from __future__ import annotations

import pytest

from kqv.spec import CLAUSES, DerivationError, gradients

GRADIENT_IDS = ["gradient.value", "gradient.weights", "gradient.scores", "gradient.query", "gradient.key",
                "gradient.masked-row"]


def test_the_gradients_section_holds_the_six_clauses() -> None:
    assert [item.id for item in CLAUSES.values() if item.section == "gradients"] == GRADIENT_IDS


def test_every_gradient_step_differentiates_or_uses_the_jacobian() -> None:
    for identifier in GRADIENT_IDS:
        steps = CLAUSES[identifier].derivation.steps
        assert all(step.check is not None for step in steps), identifier
        assert any("sympy differentiates" in step.text for step in steps), identifier


def _rejected(derivation_builder, closed) -> str:
    with pytest.raises(DerivationError) as raised:
        derivation_builder(closed).check()
    return str(raised.value)


def test_value_gradient_without_the_transpose_is_rejected() -> None:
    message = _rejected(gradients.value_derivation, lambda weights, upstream: weights * upstream)
    assert message.startswith("step 1")


def test_weights_gradient_without_the_transpose_is_rejected() -> None:
    _rejected(gradients.weights_derivation, lambda upstream, values: upstream * values)


def test_scores_gradient_without_the_row_sum_is_rejected() -> None:
    message = _rejected(gradients.scores_derivation, lambda weights, upstream: weights.multiply_elementwise(upstream))
    assert "softmax Jacobian" in message


def test_scores_gradient_with_a_column_sum_is_rejected() -> None:
    def column_sum(weights, upstream):
        product = weights.multiply_elementwise(upstream)
        sums = type(weights)(weights.rows, weights.cols, lambda a, b: sum(product.col(b)))
        return weights.multiply_elementwise(upstream - sums)

    _rejected(gradients.scores_derivation, column_sum)


def test_query_gradient_without_the_scale_is_rejected() -> None:
    _rejected(gradients.query_derivation, lambda scale, d_scores, keys, queries: d_scores * keys)


def test_query_gradient_with_the_transposed_scores_is_rejected() -> None:
    _rejected(gradients.query_derivation, lambda scale, d_scores, keys, queries: scale * d_scores.T * keys)


def test_key_gradient_without_the_transpose_is_rejected() -> None:
    _rejected(gradients.key_derivation, lambda scale, d_scores, keys, queries: scale * d_scores * queries)


def test_masked_row_value_gradient_without_the_uniform_share_is_rejected() -> None:
    # Under "uniform" the row's output is the mean of V: dV without its dO_1 / S is the zeros convention's.
    message = _rejected(gradients.masked_row_derivation,
                        lambda weights, upstream: gradients._row_weights(weights, 0).T * upstream)
    assert message.startswith("step 6") and "uniform" in message


def test_masked_row_value_gradient_with_the_share_on_every_row_is_rejected() -> None:
    def on_every_row(weights, upstream):
        return gradients._uniform_value_closed(weights, upstream) + upstream / 2

    _rejected(gradients.masked_row_derivation, on_every_row)


def test_the_clauses_closed_forms_pass() -> None:
    for build in (gradients.value_derivation, gradients.weights_derivation, gradients.scores_derivation):
        build().check()
