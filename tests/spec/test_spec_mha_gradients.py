"""The derivations of the mha gradient clauses reject a wrong closed form: sympy's derivative of the loss is
compared entry by entry, so a transposed product or a path left out fails the step."""

from __future__ import annotations

import pytest

from kqv.spec import CLAUSES, DerivationError, mha_gradients
from kqv.spec.gradients import gradient_step


@pytest.mark.parametrize("identifier", ["mha.gradient.inputs", "mha.gradient.weights"])
def test_the_clause_sits_in_the_multihead_section_and_renders_on_the_gradients_page(identifier: str) -> None:
    item = CLAUSES[identifier]
    assert item.section == "multihead" and item.page == "gradients"
    item.derivation.check()


def test_a_weight_gradient_transposed_is_rejected() -> None:
    x, w, _, upstream, loss = mha_gradients._product("p")
    assert gradient_step("dW", loss, w, x.T * upstream).holds()
    assert not gradient_step("dW = G^T x", loss, w, upstream.T * x).holds()


def test_an_input_gradient_without_the_value_path_is_rejected() -> None:
    x, w_k, _, g_k, through_key = mha_gradients._product("k")
    _, w_v, b_v, g_v, _ = mha_gradients._product("v")
    both = through_key + mha_gradients.sum_product(g_v, x * w_v + mha_gradients.sympy.ones(2, 1) * b_v)
    assert gradient_step("both paths", both, x, g_k * w_k.T + g_v * w_v.T).holds()
    step = gradient_step("the key path only", both, x, g_k * w_k.T)
    with pytest.raises(DerivationError):
        mha_gradients.Derivation((step,)).check()
