"""The pieces of a catalogue: a prediction, a named departure, and a kind's catalogue of them.

A departure is an alternative formula the implementation may compute instead of the spec's: a name, a
one-line description, and a function that, given the inputs of one call and how the backend is judged,
returns what the alternative computes with its error bound (a :class:`Prediction`), or ``None`` where it
does not apply (a causal departure on a call without ``is_causal``). A departure with a parameter (the tile
of keys kept, the constant a mask is filled with) yields one prediction per value, each with its
``detail``; the description's ``{detail}`` names the value that matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ..compare import mismatch


@dataclass(frozen=True)
class Prediction:
    """What a formula computes on one call: ``(expected, bound)`` pairs, one per convention it may follow (a row
    that keeps no key under each undeclared ``masked_rows`` convention), the bound that of computing it in the
    backend's precision (the tolerance model of :mod:`kqv.conformance.tolerance`, applied to this formula)."""

    options: tuple[tuple[np.ndarray, np.ndarray], ...]

    @classmethod
    def of(cls, expected: np.ndarray, bound: np.ndarray) -> "Prediction":
        return cls(((expected, bound),))

    def explains(self, output: np.ndarray) -> bool:
        """Whether ``output`` agrees with one of the options within its bound (NaN where it has NaN)."""
        with np.errstate(all="ignore"):
            return any(expected.shape == output.shape and mismatch(output, expected, bound) is None
                       for expected, bound in self.options)


Alternatives = Iterable[tuple[str, Prediction]]
Predict = Callable[[Any, Any], "Prediction | Alternatives | None"]


@dataclass(frozen=True)
class Departure:
    """One named departure: ``predict(inputs, judging)`` gives its :class:`Prediction` (or ``(detail, prediction)``
    pairs for a departure with a parameter), ``None`` where it does not apply."""

    name: str
    description: str  # one line; "{detail}" stands for the parameter that matched
    predict: Predict

    def alternatives(self, inputs: Any, judging: Any) -> list[tuple[str, Prediction]]:
        """Its predictions on one call, each with its detail (``""`` without a parameter); empty where it does not
        apply."""
        found = self.predict(inputs, judging)
        if found is None:
            return []
        if isinstance(found, Prediction):
            return [("", found)]
        return list(found)

    def describe(self, details: Iterable[str]) -> str:
        """The description with the matching details (``"64 or 128"``, in the order it yields them) in place of
        ``{detail}``."""
        return self.description.replace("{detail}", " or ".join(details))


class Entries(list):
    """The departures of one catalogue, in order; ``@entries.departure(name, description)`` adds a function."""

    def departure(self, name: str, description: str) -> Callable[[Predict], Predict]:
        if any(entry.name == name for entry in self):
            raise ValueError(f"departure {name!r} is in the catalogue twice")

        def add(predict: Predict) -> Predict:
            self.append(Departure(name, description, predict))
            return predict

        return add


@dataclass(frozen=True)
class Catalogue:
    """The departures of one kind and how its backends are observed.

    ``observe(backend, case)`` calls the backend once and returns ``(output as float64, inputs, judging)`` (a
    :class:`~kqv.conformance.registry.CheckFailure` when it raises or returns the wrong shape); ``correct(inputs,
    judging)`` is the spec's own :class:`Prediction`; ``probes(case, declaration)`` the canonical probes that
    stand beside a failing case.
    """

    kind: str
    entries: tuple[Departure, ...]
    observe: Callable[[Any, Any], tuple[np.ndarray, Any, Any]]
    correct: Callable[[Any, Any], Prediction]
    probes: Callable[[Any, Any], list[Any]]

    def entry(self, name: str) -> Departure:
        return next(entry for entry in self.entries if entry.name == name)
