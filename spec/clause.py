"""The clause: one formula or property of attention, with a stable id.

A clause carries a one-line statement, a sympy expression of its formula, the
LaTeX of that expression (always rendered by :func:`sympy.latex`, never typed by
hand) and, where there is one, a derivation whose steps sympy checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy


class DerivationError(AssertionError):
    """A derivation step that sympy could not confirm."""


@dataclass(frozen=True)
class Step:
    """One step of a derivation: ``lhs = rhs``, justified by ``text``.

    ``check`` overrides the default test ``simplify(lhs - rhs) == 0`` where the
    step needs another argument (a limit, an expectation, a substitution).
    """

    text: str
    lhs: sympy.Basic
    rhs: sympy.Basic
    check: Callable[[sympy.Basic, sympy.Basic], bool] | None = None

    @property
    def latex(self) -> str:
        return f"{sympy.latex(self.lhs)} = {sympy.latex(self.rhs)}"

    def holds(self) -> bool:
        if self.check is not None:
            return bool(self.check(self.lhs, self.rhs))
        return sympy.simplify(self.lhs - self.rhs) == 0


@dataclass(frozen=True)
class Derivation:
    """A chain of steps, each checked by sympy."""

    steps: tuple[Step, ...]

    def check(self) -> None:
        """Raise :class:`DerivationError` naming the first step that fails."""
        for number, step in enumerate(self.steps, start=1):
            if not step.holds():
                raise DerivationError(f"step {number} ({step.text}) does not hold: {step.latex}")


@dataclass(frozen=True)
class Clause:
    """A formula or property of attention with a stable ``id``."""

    id: str
    title: str
    statement: str
    expr: sympy.Basic | None = None
    derivation: Derivation | None = None
    section: str = ""
    symbols: dict[str, str] = field(default_factory=dict)
    page: str = ""  # the docs page (docs/<page>.md) that renders it; the section's page unless given

    @property
    def latex(self) -> str:
        """LaTeX of :attr:`expr` from :func:`sympy.latex` ('' when the clause has no formula)."""
        return "" if self.expr is None else sympy.latex(self.expr)
