"""The registry of checks: each enforces one clause id of the spec for one kind of backend.

A check is a function ``run(backend, case, context)`` that raises :class:`CheckFailure` when the
backend breaks its clause on that case, a strategy that draws cases within the backend's
declaration, and what it needs from the declaration (without which it is skipped, with the reason).
What the runner and the reports need to know of a check is an attribute of it: ``foundation``
(every other check of the kind leans on it), ``numeric`` (it judges numbers against the reference,
so an imprecise backend departs from it) and ``variant`` (the variant of the contract it belongs to, or
``backward`` for the gradient checks of :mod:`kqv.conformance.gradients`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from hypothesis import strategies as st

from .compare import mismatch
from .declaration import Declaration
from .profiles import Profile


class CheckFailure(AssertionError):
    """The backend breaks the clause on this case; the message says how.

    ``cause`` is set when the call itself failed, whatever the clause (the backend raised, or returned something
    other than an array): the same cause across clauses is one root cause of the report.
    """

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass
class Context:
    """What a check may keep across the examples of one run (e.g. the conventions it observed)."""

    observations: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)

    def observe(self, name: str, value: str, case: Any) -> None:
        self.observations.setdefault(name, []).append((value, case))


Runner = Callable[[Any, Any, Context], None]
StrategyFactory = Callable[[Declaration, str, Profile], st.SearchStrategy]
Requirement = Callable[[Declaration], "str | None"]
Finisher = Callable[[Context, Declaration], "tuple[str, list[Any]] | None"]


@dataclass(frozen=True)
class Check:
    """One check of one clause for one kind."""

    clause: str
    kind: str
    name: str
    run: Runner
    strategy: StrategyFactory
    requires: tuple[Requirement, ...] = ()
    finish: Finisher | None = None  # after all examples: (failure message, the cases that show it), or None
    per_dtype: bool = True  # pe checks run once: the call has no input dtype
    foundation: bool = False  # other failures of the kind may only echo a failure of this one
    numeric: bool = True  # compares numbers with the reference (False: shape, dtype, repeatability, ...)
    variant: str | None = None  # the variant of the sdpa contract it checks (kqv.conformance.variants), or "backward"
    examples: Callable[[Profile], int] | None = None  # examples per dtype, when not the profile's own

    def examples_in(self, profile: Profile) -> int:
        """How many examples it draws per dtype in ``profile``.

        At tile boundaries (``profile.tiles``) a check that runs once, with no dtype (``pe``), draws as many
        as the clause ``attention.tile-boundaries`` does at each dtype: its cases are cheap and it has no other.
        """
        if profile.tiles:
            return profile.examples if self.per_dtype else profile.tile_clause_examples
        return profile.examples if self.examples is None else self.examples(profile)

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0] if self.run.__doc__ else ""

    def skip_reason(self, declaration: Declaration) -> str | None:
        for requirement in self.requires:
            reason = requirement(declaration)
            if reason:
                return reason
        return None


CHECKS: list[Check] = []


def check(clause: str, kind: str, strategy: StrategyFactory, *, requires: tuple[Requirement, ...] = (),
          finish: Finisher | None = None, per_dtype: bool = True, foundation: bool = False, numeric: bool = True,
          variant: str | None = None, examples: Callable[[Profile], int] | None = None) -> Callable[[Runner], Runner]:
    """Register the decorated function as the check of ``clause`` for ``kind``."""
    from kqv.spec import clause as lookup

    lookup(clause)  # an unknown id is a KeyError at import time, naming the closest ids

    def register(run: Runner) -> Runner:
        CHECKS.append(Check(clause, kind, run.__name__, run, strategy, requires, finish, per_dtype, foundation,
                            numeric, variant, examples))
        return run

    return register


def agree(actual: Any, expected: Any, bound: Any, what: str = "the output") -> None:
    """Raise :class:`CheckFailure` unless every element of ``actual`` is within ``bound`` of ``expected``."""
    found = mismatch(actual, expected, bound, what)
    if found is not None:
        raise CheckFailure(str(found))


def needs(feature: str, text: str) -> Requirement:
    """A requirement: the declaration's ``feature`` must be true; otherwise skip, saying ``text``."""

    def requirement(declaration: Declaration) -> str | None:
        return None if getattr(declaration, feature) else f"the backend declares no {text} ({feature}=False)"

    return requirement


def needs_alignment(alignment: str) -> Requirement:
    def requirement(declaration: Declaration) -> str | None:
        if not declaration.causal:
            return "the backend declares no is_causal (causal=False)"
        if declaration.alignment != alignment:
            return f"the backend's causal alignment is {declaration.alignment}, not {alignment}"
        return None

    return requirement


def needs_variant(name: str) -> Requirement:
    """A requirement: the backend declares the variant ``name`` (its declaration field)."""
    from .variants import variant

    text = variant(name).help.split(":")[0]

    def requirement(declaration: Declaration) -> str | None:
        return None if getattr(declaration, name) else f"the backend declares no {name} ({name}=False: {text})"

    return requirement


def needs_non_causal(declaration: Declaration) -> str | None:
    """A requirement of the checks whose property is about calls without ``is_causal`` (a permutation of positions)."""
    if declaration.non_causal:
        return None
    return "the check needs calls without is_causal, and the backend declares causal calls only (non_causal=False)"


def needs_batch(declaration: Declaration) -> str | None:
    return None if any(n >= 1 for n in declaration.batch_dims) else "the backend declares no batch dims (batch_dims=(0,))"


def needs_some_mask(declaration: Declaration) -> str | None:
    if declaration.bool_mask or declaration.float_mask:
        return None
    return "the backend declares neither bool nor float masks"


def checks_for(kind: str) -> list[Check]:
    """The registered checks of ``kind``, in the order of the spec's clauses."""
    from kqv.spec import CLAUSES

    order = {clause_id: n for n, clause_id in enumerate(CLAUSES)}
    return sorted((c for c in CHECKS if c.kind == kind), key=lambda c: order[c.clause])
