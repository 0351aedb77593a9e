"""What every kind of backend has: a case (a few named parameters that rebuild the arrays of one
call, with an exact JSON round trip) and a :class:`Kind` that says how the call is made and judged.

A kind's home (``kqv.conformance.kinds.<kind>``) holds everything that is that kind's: its case
and inputs, its strategy, how it is called, its expectation and bound, and its checks. The checks
that every kind shares (``kqv.conformance.checks.shared``) reach it through its :class:`Kind`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np


def rng(seed: int, salt: int = 0) -> np.random.Generator:
    """The generator of one case's arrays: ``seed`` from the case, ``salt`` for each independent part."""
    return np.random.default_rng([seed, salt])


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples a case holds (nested ones too)."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Case:
    """Base of the cases of every kind: JSON round trip and a one-line description."""

    kind: ClassVar[str] = ""

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, **dataclasses.asdict(self)}, sort_keys=True)

    def describe(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Case":
        """The case of ``data`` (the JSON object without ``kind``); a ValueError naming unknown fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"case: unknown field(s) {', '.join(unknown)} for a {cls.kind} case")
        return cls(**{name: _tuples(value) for name, value in data.items()})


@dataclass(frozen=True)
class Kind:
    """One contract (``sdpa``, ``mha``, ``pe``): how its backends are called and judged.

    ``inputs(case)`` gives the arguments of one call (the arrays, or for ``pe`` the case itself);
    ``arrays(inputs)`` names the arrays it hands over (to check that none is written to);
    ``call(backend, inputs, layout)`` makes the call and returns its
    ``Invocation`` (the backend's own input arrays and the output); ``output(backend, inputs, layout)`` its output as
    float64 after checking the shape; ``expectation(backend, inputs, case)`` the reference output
    and the bound under the backend's declaration; ``general`` the strategy of the checks every kind
    shares, and ``shared`` the clauses of those checks that apply to this kind; ``conventions`` the
    declared conventions its reports list.
    """

    name: str
    case: type[Case]
    output_layout: str
    leading: str  # the argument whose dtype the output has (clause attention.dtype)
    inputs: Callable[[Any], Any]
    arrays: Callable[[Any], dict[str, np.ndarray]]
    call: Callable[..., Any]
    output: Callable[..., np.ndarray]
    expectation: Callable[..., Any] | None
    general: Callable[..., Any]
    shared: tuple[str, ...]
    conventions: tuple[str, ...] = ()
