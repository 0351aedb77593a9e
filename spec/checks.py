"""The arguments a derivation step may use in place of ``simplify(lhs - rhs) == 0``.

Each function takes ``(lhs, rhs)`` and returns whether sympy confirms the step; none returns
``True`` without computing. They are passed as :attr:`kqv.spec.clause.Step.check`.
"""

from __future__ import annotations

import sympy
import sympy.stats


def _is_zero(expr: sympy.Basic) -> bool:
    return sympy.simplify(expr) == 0


def evaluated(lhs: sympy.Basic, rhs: sympy.Basic) -> bool:
    """Evaluate unevaluated sums, derivatives and limits, rename bound indices canonically, simplify."""
    return _is_zero((sympy.sympify(lhs).doit() - sympy.sympify(rhs).doit()).as_dummy())


def same_infinity(lhs: sympy.Basic, rhs: sympy.Basic) -> bool:
    """Evaluate ``lhs`` (a limit, a log of 0) to an infinity equal to ``rhs``, where ``lhs - rhs`` would be undefined."""
    value = sympy.sympify(lhs).doit()
    return value.is_infinite is True and value == rhs


def same_matrix(lhs: sympy.Basic, rhs: sympy.Basic) -> bool:
    """Two explicit matrices of the same shape whose entries simplify to the same expressions."""
    lhs, rhs = sympy.ImmutableMatrix(lhs.doit()), sympy.ImmutableMatrix(rhs.doit())
    return lhs.shape == rhs.shape and all(_is_zero(entry) for entry in lhs - rhs)


def same_matrix_trig(lhs: sympy.Basic, rhs: sympy.Basic) -> bool:
    """Like :func:`same_matrix`, expanding sums of angles first (``sin(a + b)``, ``cos(a + b)``)."""
    lhs, rhs = sympy.ImmutableMatrix(lhs.doit()), sympy.ImmutableMatrix(rhs.doit())
    return lhs.shape == rhs.shape and all(
        _is_zero(sympy.expand_trig(sympy.expand(entry))) for entry in lhs - rhs
    )


def same_shape(lhs: sympy.Basic, rhs: sympy.Basic) -> bool:
    """``lhs`` is a matrix expression (sympy checks the shapes of its products), ``rhs`` its expected shape."""
    return len(lhs.shape) == len(rhs) and all(_is_zero(a - b) for a, b in zip(lhs.shape, rhs))


def relation(lhs: sympy.Basic, rhs: sympy.Basic) -> bool:
    """``lhs`` is an unevaluated relation (``a >= b``), ``rhs`` is ``true``: sympy decides the sign of ``a - b``.

    The difference is simplified, then the relation is rebuilt so that sympy evaluates it from the
    assumptions on its symbols (real, positive, nonnegative).
    """
    difference = sympy.simplify(lhs.lhs - lhs.rhs)
    return bool(type(lhs)(difference, 0) == rhs)


def by_distribution(lhs: sympy.Basic, rhs: sympy.Basic) -> bool:
    """Evaluate the ``sympy.stats`` variances and expectations in ``lhs`` from the random variables' laws."""

    def variance(node):
        (argument,) = node.args[:1]
        first = sympy.stats.Expectation(argument).expand().doit()
        second = sympy.stats.Expectation(argument**2).expand().doit()
        return second - first**2

    value = lhs.replace(lambda node: isinstance(node, sympy.stats.Variance), variance)
    value = value.replace(
        lambda node: isinstance(node, sympy.stats.Expectation), lambda node: node.expand().doit()
    )
    return _is_zero(value - rhs)


# The expectation operator of :func:`by_moments`.
Mean = sympy.Function(r"\mathbb{E}")

_MOMENTS = {0: sympy.Integer(1), 1: sympy.Integer(0), 2: sympy.Integer(1)}


class _UnknownMoment(Exception):
    """A moment of order 3 or more: mean 0 and variance 1 do not fix it."""


def _expect(argument: sympy.Expr) -> sympy.Expr:
    """``E[argument]`` for a polynomial in independent zero-mean unit-variance variables (its free symbols)."""
    variables = sorted(argument.free_symbols, key=str)
    polynomial = sympy.Poly(sympy.expand(argument), *variables) if variables else None
    if polynomial is None:
        return argument
    total = sympy.Integer(0)
    for powers, coefficient in polynomial.terms():
        moment = sympy.Integer(1)
        for power in powers:
            if power not in _MOMENTS:
                raise _UnknownMoment(power)
            moment *= _MOMENTS[power]
        total += coefficient * moment
    return total


def by_moments(lhs: sympy.Basic, rhs: sympy.Basic) -> bool:
    """Evaluate every ``E[...]`` in ``lhs`` by linearity and independence, with ``E[x] = 0`` and ``E[x^2] = 1``.

    Every free symbol inside an expectation is an independent random variable with mean 0 and
    variance 1 (any law: only these two moments are used).
    """
    try:
        value = lhs.replace(lambda node: getattr(node, "func", None) == Mean, lambda node: _expect(node.args[0]))
    except _UnknownMoment:
        return False
    return _is_zero(value - rhs)
