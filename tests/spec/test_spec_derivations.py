"""Every derivation holds, and the checker rejects steps that do not."""

from __future__ import annotations

import pytest
import sympy
import sympy.stats

from kqv.spec import CLAUSES, Derivation, DerivationError, Step
from kqv.spec import checks, symbolic
from kqv.spec.positional import rotation_matrix

DERIVED = [item for item in CLAUSES.values() if item.derivation is not None]


@pytest.mark.parametrize("item", DERIVED, ids=[item.id for item in DERIVED])
def test_derivation_holds(item) -> None:
    item.derivation.check()


@pytest.mark.parametrize("item", DERIVED, ids=[item.id for item in DERIVED])
def test_every_step_has_text_and_latex(item) -> None:
    for step in item.derivation.steps:
        assert step.text and "\n" not in step.text
        assert step.latex


def _fails(*steps: Step) -> str:
    with pytest.raises(DerivationError) as raised:
        Derivation(tuple(steps)).check()
    return str(raised.value)


x0, x1, a = sympy.symbols("x_0 x_1 a", real=True)


def test_softmax_is_not_invariant_under_multiplication() -> None:
    scaled, plain = symbolic.softmax([a * x0, a * x1]), symbolic.softmax([x0, x1])
    message = _fails(Step("softmax(a x) = softmax(x)", scaled[0], plain[0]))
    assert "step 1" in message and "softmax(a x)" in message


def test_the_error_names_the_first_failing_step() -> None:
    shifted, plain = symbolic.softmax([x0 + a, x1 + a]), symbolic.softmax([x0, x1])
    message = _fails(
        Step("shift invariance", shifted[0], plain[0]),
        Step("the weights do not sum to 2", sympy.Add(*plain), sympy.Integer(2)),
    )
    assert message.startswith("step 2 (the weights do not sum to 2)")


def test_a_wrong_matrix_step_fails() -> None:
    query = symbolic.matrix("q", 2, 1, real=True)
    key = symbolic.matrix("k", 3, 1, real=True)
    value = symbolic.matrix("v", 3, 1, real=True)
    swap = sympy.ImmutableMatrix([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    _fails(Step("permuting keys without their values changes nothing",
                symbolic.sdpa(query, swap * key, value), symbolic.sdpa(query, key, value), check=checks.same_matrix))


def test_a_wrong_matrix_shape_fails() -> None:
    _fails(Step("(1, 2) = (2, 1)", sympy.ImmutableMatrix([[x0, x1]]), sympy.ImmutableMatrix([x0, x1]),
                check=checks.same_matrix))


def test_the_unscaled_variance_is_not_one() -> None:
    terms = sympy.Add(*(sympy.Symbol(f"q_{n}") * sympy.Symbol(f"k_{n}") for n in range(4)))
    _fails(Step("Var(q.k) = 1 without the scale", checks.Mean(terms**2) - checks.Mean(terms) ** 2,
                sympy.Integer(1), check=checks.by_moments))


def test_moments_beyond_the_second_are_not_assumed() -> None:
    q = sympy.Symbol("q")
    _fails(Step("E[q^4] = 1", checks.Mean(q**4), sympy.Integer(1), check=checks.by_moments))


def test_a_wrong_variance_from_the_distribution_fails() -> None:
    q = [sympy.stats.Normal(f"q_{n}", 0, 1) for n in range(2)]
    k = [sympy.stats.Normal(f"k_{n}", 0, 1) for n in range(2)]
    _fails(Step("Var(q.k) = 1 for d_k = 2", sympy.stats.Variance(q[0] * k[0] + q[1] * k[1]), sympy.Integer(1),
                check=checks.by_distribution))


def test_a_false_inequality_fails() -> None:
    _fails(Step("-exp(x) >= 0", sympy.Ge(-sympy.exp(x0), 0, evaluate=False), sympy.true, check=checks.relation))


def test_an_undecided_inequality_fails() -> None:
    _fails(Step("x >= 0 for any real x", sympy.Ge(x0, 0, evaluate=False), sympy.true, check=checks.relation))


def test_a_wrong_rotation_fails() -> None:
    pos, k, w = sympy.symbols("pos k w", real=True)
    pair = lambda p: sympy.ImmutableMatrix([sympy.sin(w * p), sympy.cos(w * p)])  # noqa: E731
    _fails(Step("rotation by R^T", pair(pos + k), rotation_matrix(k * w).T * pair(pos),
                check=checks.same_matrix_trig))


def test_a_wrong_limit_fails() -> None:
    p0, p1 = symbolic.softmax([x0, x1])
    _fails(Step("p_1 -> 0 as x_1 -> +oo", sympy.Limit(p1, x1, sympy.oo), sympy.Integer(0), check=checks.evaluated))


def test_a_wrong_shape_fails() -> None:
    n = sympy.Symbol("n", integer=True, positive=True)
    product = sympy.MatrixSymbol("X", n, 2 * n) * sympy.MatrixSymbol("W", 2 * n, 3)
    _fails(Step("(n, 2n)(2n, 3) is (n, 2n)", product, sympy.Tuple(n, 2 * n), check=checks.same_shape))
    _fails(Step("a matrix is not three-dimensional", product, sympy.Tuple(n, 3, 1), check=checks.same_shape))


def test_the_causal_mask_with_the_wrong_inequality_looks_ahead() -> None:
    from kqv.spec.masking import i, j

    size = 3
    query, key, value = (symbolic.matrix(name, size, 1, real=True) for name in "qkv")
    wrong = sympy.Piecewise((0, j >= i), (-sympy.oo, True))
    mask = sympy.ImmutableMatrix(size, size, lambda r, c: wrong.subs({i: r, j: c}))
    output = symbolic.sdpa(query, key, value, mask=mask)
    _fails(Step("O_0 does not depend on value 2", sympy.Derivative(output[0, 0], value[2, 0]), sympy.Integer(0),
                check=checks.evaluated))


def test_heads_of_full_width_do_not_cost_one_head() -> None:
    from kqv.spec.multihead import multiply_adds
    from kqv.spec.notation import d_model, h

    full = multiply_adds(h, d_model, d_model)
    one = multiply_adds(sympy.Integer(1), d_model, d_model, evaluate=True)
    message = _fails(Step("h heads of width d_model cost one head", full["scores"], one["scores"]))
    assert "step 1" in message


def test_an_online_softmax_that_forgets_to_rescale_fails() -> None:
    x = list(sympy.symbols("x_0:2", real=True))
    m, m_new = sympy.symbols("m m'", real=True)
    forgot = sympy.exp(x[0] - m) + sympy.exp(x[1] - m_new)  # the old sum is not rescaled by exp(m - m')
    _fails(Step("the running sum without the rescaling", forgot, sympy.exp(x[0] - m_new) + sympy.exp(x[1] - m_new),
                check=lambda lhs, rhs: sympy.simplify(sympy.powsimp(sympy.expand(lhs - rhs))) == 0))
