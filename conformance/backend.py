"""A backend: a callable under test, its declaration, and the adapter to its arrays.

:func:`invoke` is the one place a backend is called: it converts the NumPy inputs with the
adapter, calls the function with the contract's argument names, and turns anything but a proper
array back (an exception, another type, another device) into a :class:`BackendError`, which fails
the clause being checked and lets the run go on. A call asked for further results (``return_lse=True``)
returns a tuple, ``(output, lse)``, each element converted alike. :func:`invoke_backward` is the one place a
backend is differentiated: through its ``backward`` callable when it has one, else through its adapter (torch
autograd, ``jax.vjp``).

The contract of a backward callable (``Backend.backward``, ``kqv check TARGET --backward MODULE:FUNCTION``)::

    backward(query, key, value, grad_output, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             **the same variant keywords as the call) -> (dQ, dK, dV)

``grad_output`` is ``dO``, the gradient of a loss with respect to the output, of the output's shape and dtype;
``dQ``, ``dK`` and ``dV`` are arrays of the backend's type, each of its input's shape and dtype (summed over the
batch dims the input was broadcast along and, with ``enable_gqa``, over the query heads of each group). Only
the keywords a case needs are passed, as to the forward call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from .adapters import Adapter, NumpyAdapter, OutputTypeError
from .declaration import Declaration
from .messages import backend_raised, backend_returned, not_a_tuple, not_three_gradients


class BackendError(Exception):
    """The backend raised, or returned something other than an array of its own type."""


class Recipe(NamedTuple):
    """How a backend was loaded (the arguments of ``kqv.conformance.loading.resolve``), to load it again in a
    worker process."""

    target: str
    kind: str
    overrides: dict[str, Any]
    arrays: str
    backward: str | None = None  # the target of its backward callable (module:function)


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
    backward: Callable[..., Any] | None = None  # (query, key, value, grad_output, **call) -> (dQ, dK, dV)

    def __post_init__(self) -> None:
        if self.backward is not None and not callable(self.backward):
            raise TypeError(f"backward: expected a callable (query, key, value, grad_output, **options) -> "
                            f"(dQ, dK, dV), got {type(self.backward).__name__}")

    @property
    def kind(self) -> str:
        return self.declaration.kind

    def unavailable(self) -> str | None:
        """Why this backend cannot run here, or None."""
        return self.adapter.unavailable()

    def backward_missing(self) -> str | None:
        """Why a backend that declares ``backward`` cannot be differentiated, or None."""
        if not self.declaration.backward or self.backward is not None or self.adapter.differentiates:
            return None
        return (f"backward: {self.adapter.array_type} arrays cannot be differentiated by kqv; give the backend a "
                f"backward callable (Backend(..., backward=fn), or kqv check TARGET --backward MODULE:FUNCTION), "
                f"or take torch tensors (--arrays torch)")


@dataclass
class Invocation:
    """One call: the backend's own input arrays (to check later that they are unchanged), the output and the
    further results asked for, by name (``{"lse": ...}``)."""

    natives: dict[str, Any]
    output: np.ndarray
    results: dict[str, np.ndarray] = field(default_factory=dict)


def _converter(backend: Backend, natives: dict[str, Any]) -> Callable[[str, Any, str], Any]:
    """``convert(name, value, layout)``: a NumPy array as the backend's own (recorded in ``natives`` by name),
    anything else as it is."""
    converted: dict[int, Any] = {}  # the same NumPy array twice (self-attention) is the same native array twice

    def convert(name: str, value: Any, how: str) -> Any:
        if isinstance(value, np.ndarray):
            if id(value) not in converted:
                converted[id(value)] = backend.adapter.to_native(value, how)
            natives[name] = converted[id(value)]
            return natives[name]
        return value

    return convert


def invoke(backend: Backend, args: tuple[Any, ...], kwargs: dict[str, Any], names: tuple[str, ...],
           layout: str = "contiguous", results: tuple[str, ...] = ()) -> Invocation:
    """Call ``backend.fn(*args, **kwargs)`` with every NumPy array converted by the adapter in ``layout``.

    ``names`` names the positional arguments (for the messages and for :attr:`Invocation.natives`);
    ``layout`` applies to them, keyword arrays (masks, biases) are passed contiguous. ``results`` names the
    further results the call returns after the output (``("lse",)``): it must return the tuple
    ``(output, *results)``.
    """
    natives: dict[str, Any] = {}
    convert = _converter(backend, natives)
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


@dataclass
class BackwardInvocation:
    """One differentiation: the backend's own input arrays, ``grad_output`` among them (to check later that they are
    unchanged), and the gradients ``(dQ, dK, dV)`` as NumPy arrays of the dtypes returned."""

    natives: dict[str, Any]
    gradients: tuple[np.ndarray, ...]  # one for each argument differentiated


def invoke_backward(backend: Backend, args: tuple[Any, ...], kwargs: dict[str, Any], names: tuple[str, ...],
                    grad_output: np.ndarray, layout: str = "contiguous",
                    wrt: tuple[str, ...] = ()) -> BackwardInvocation:
    """The gradients of ``backend.fn(*args, **kwargs)`` with respect to ``args`` and then to the keyword arrays
    ``wrt`` (in that order; the mha biases), given ``grad_output`` (``dO``): by
    ``backend.backward(*args, grad_output, **kwargs)`` when the backend has one, else by its adapter's
    ``Adapter.vjp`` (autograd, ``jax.vjp``), the keywords ``wrt`` passed to it as further arguments. Arrays are
    converted as :func:`invoke` converts them (``grad_output`` contiguous); anything but one array of the backend's
    type for each of ``args`` and ``wrt`` is a :class:`BackendError`."""
    natives: dict[str, Any] = {}
    convert = _converter(backend, natives)
    call_args = tuple(convert(name, value, layout) for name, value in zip(names, args))
    call_kwargs = {name: convert(name, value, "contiguous") for name, value in kwargs.items()}
    upstream = convert("grad_output", grad_output, "contiguous")
    try:
        if backend.backward is not None:
            result = backend.backward(*call_args, upstream, **call_kwargs)
        else:
            fixed = {name: value for name, value in call_kwargs.items() if name not in wrt}
            count = len(call_args)

            def fn(*arrays: Any, **rest: Any) -> Any:
                return backend.fn(*arrays[:count], **dict(zip(wrt, arrays[count:])), **rest)

            result = backend.adapter.vjp(fn, call_args + tuple(call_kwargs[name] for name in wrt), fixed, upstream)
    except Exception as error:  # noqa: BLE001 - any failure of the backend is a finding, not a crash
        raise BackendError(backend_raised(error)) from error
    if not isinstance(result, (tuple, list)) or len(result) != len(args) + len(wrt):
        raise BackendError(not_three_gradients(result, tuple(names[:len(args)]) + tuple(wrt)))
    try:
        gradients = tuple(backend.adapter.to_numpy(value) for value in result)
    except OutputTypeError as error:
        raise BackendError(backend_returned(error)) from error
    return BackwardInvocation(natives, gradients)
