"""A backend: a callable under test, its declaration, and the adapter to its arrays.

:func:`invoke` is the one place a backend is called: it converts the NumPy inputs with the
adapter, calls the function with the contract's argument names, and turns anything but a proper
array back (an exception, another type, another device) into a :class:`BackendError`, which fails
the clause being checked and lets the run go on. A call asked for further results (``return_lse=True``)
returns a tuple, ``(output, lse)``, each element converted alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from .adapters import Adapter, NumpyAdapter, OutputTypeError
from .declaration import Declaration
from .messages import backend_raised, backend_returned, not_a_tuple


class BackendError(Exception):
    """The backend raised, or returned something other than an array of its own type."""


class Recipe(NamedTuple):
    """How a backend was loaded (the arguments of ``kqv.conformance.loading.resolve``), to load it again in a
    worker process."""

    target: str
    kind: str
    overrides: dict[str, Any]
    arrays: str


@dataclass
class Backend:
    """A callable following the ``declaration.kind`` contract, with the adapter of its array type.

    ``recipe`` is set when the backend was loaded from a target string; a worker process loads it
    again from there instead of unpickling the function.
    """

    name: str
    fn: Callable[..., Any]
    declaration: Declaration = field(default_factory=Declaration)
    adapter: Adapter = field(default_factory=NumpyAdapter)
    description: str = ""
    recipe: Recipe | None = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return self.declaration.kind

    def unavailable(self) -> str | None:
        """Why this backend cannot run here, or None."""
        return self.adapter.unavailable()


@dataclass
class Invocation:
    """One call: the backend's own input arrays (to check later that they are unchanged), the output and the
    further results asked for, by name (``{"lse": ...}``)."""

    natives: dict[str, Any]
    output: np.ndarray
    results: dict[str, np.ndarray] = field(default_factory=dict)


def invoke(backend: Backend, args: tuple[Any, ...], kwargs: dict[str, Any], names: tuple[str, ...],
           layout: str = "contiguous", results: tuple[str, ...] = ()) -> Invocation:
    """Call ``backend.fn(*args, **kwargs)`` with every NumPy array converted by the adapter in ``layout``.

    ``names`` names the positional arguments (for the messages and for :attr:`Invocation.natives`);
    ``layout`` applies to them, keyword arrays (masks, biases) are passed contiguous. ``results`` names the
    further results the call returns after the output (``("lse",)``): it must return the tuple
    ``(output, *results)``.
    """
    natives: dict[str, Any] = {}
    converted: dict[int, Any] = {}  # the same NumPy array twice (self-attention) is the same native array twice

    def convert(name: str, value: Any, how: str) -> Any:
        if isinstance(value, np.ndarray):
            if id(value) not in converted:
                converted[id(value)] = backend.adapter.to_native(value, how)
            natives[name] = converted[id(value)]
            return natives[name]
        return value

    call_args = tuple(convert(name, value, layout) for name, value in zip(names, args))
    call_kwargs = {name: convert(name, value, "contiguous") for name, value in kwargs.items()}
    try:
        result = backend.fn(*call_args, **call_kwargs)
    except Exception as error:  # noqa: BLE001 - any failure of the backend is a finding, not a crash
        raise BackendError(backend_raised(error)) from error
    if results:
        if not isinstance(result, (tuple, list)) or len(result) != 1 + len(results):
            raise BackendError(not_a_tuple(result, ("output",) + results, kwargs))
        result, *further = result
    try:
        output = backend.adapter.to_numpy(result)
        returned = {name: backend.adapter.to_numpy(value) for name, value in zip(results, further)} if results else {}
    except OutputTypeError as error:
        raise BackendError(backend_returned(error)) from error
    return Invocation(natives, output, returned)
