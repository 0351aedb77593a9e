"""The gradient clauses: each closed form is checked against sympy's derivative, and a wrong one fails."""

from __future__ import annotations

import pytest

from kqv.spec import CLAUSES, DerivationError, gradient_properties, gradients

GRADIENT_IDS = ["gradient.value", "gradient.weights", "gradient.scores", "gradient.query", "gradient.key",
                "gradient.masked-row"]


PROPERTY_IDS = ["gradient.accuracy", "gradient.linearity", "gradient.unkept-key", "gradient.causal",
                "gradient.group-sum", "gradient.inputs-unmodified", "gradient.determinism"]


def test_the_gradients_section_holds_the_six_clauses() -> None:
    assert [item.id for item in CLAUSES.values() if item.section == "gradients"] == GRADIENT_IDS


def test_the_properties_section_holds_what_the_conformance_checks_enforce() -> None:
    from kqv.conformance.gradients import CLAUSES as CHECKED

    assert [item.id for item in CLAUSES.values() if item.section == "gradient-properties"] == PROPERTY_IDS
    assert set(CHECKED) == set(GRADIENT_IDS) | set(PROPERTY_IDS)
    for identifier in ("gradient.linearity", "gradient.unkept-key", "gradient.causal", "gradient.group-sum"):
        assert CLAUSES[identifier].derivation is not None and CLAUSES[identifier].expr is not None, identifier


def test_scores_gradient_whose_rows_do_not_sum_to_zero_is_rejected() -> None:
    message = _rejected(gradients.scores_derivation, lambda weights, upstream: weights.multiply_elementwise(upstream))
    assert "softmax Jacobian" in message  # the first step that fails; the row-sum step fails too:
    steps = gradients.scores_derivation(lambda weights, upstream: weights.multiply_elementwise(upstream)).steps
    assert not steps[-1].holds() and "sums to zero" in steps[-1].text


def test_a_gradient_quadratic_in_do_is_not_linear() -> None:
    def quadratic(weights, upstream, queries, keys, values):
        return tuple(g.multiply_elementwise(g) for g in gradient_properties._chain(weights, upstream, queries, keys,
                                                                                  values))

    _rejected(gradient_properties.linearity_derivation, quadratic)


def test_a_key_some_query_keeps_gets_a_gradient() -> None:
    message = _rejected(gradient_properties.unkept_key_derivation, lambda a, b: a == 0 and b == 1)
    assert message.startswith("step 1")


def test_without_the_causal_mask_dq_depends_on_later_keys() -> None:
    message = _rejected(gradient_properties.causal_derivation, lambda a, b: False)
    assert message.startswith("step 1")


def test_one_head_of_the_group_is_not_the_key_gradient() -> None:
    message = _rejected(gradient_properties.group_sum_derivation, 1)
    assert message.startswith("step 1")


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
