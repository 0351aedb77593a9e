"""Turning a target (a built-in name, ``module:function`` or ``path/to/file.py:function``) into backends.

The object a target names is either a :class:`~kqv.conformance.backend.Backend` (callable,
declaration and adapter together: the small file a third party writes) or a plain callable, which
is wrapped with a declaration from the caller's options. A backward callable (``--backward
MODULE:FUNCTION``) is loaded the same way and given to each backend of the target, which then declares
``backward=True``. Anything that cannot be loaded raises :class:`LoadError` with a message that says
what was tried, and so does a callable whose signature cannot take the calls of its kind
(:mod:`kqv.conformance.contract`); the CLI turns it into exit status 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from .adapters import NumpyAdapter, TorchAdapter
from .backend import Backend, Recipe
from .backends import BUILTINS, builtin
from .contract import refusal
from .declaration import Declaration
from .options import ARRAYS, with_overrides

class LoadError(Exception):
    """A target that cannot be loaded or run here; the message says why."""


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _import_file(path: Path) -> Any:
    """Import a Python file; inside a package (folders with ``__init__.py``) as part of it, like pytest."""
    if not path.is_file():
        raise LoadError(f"target file {str(path)!r} does not exist")
    path = path.resolve()
    root, parts = path.parent, [path.stem]
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    if len(parts) > 1 or path.stem != "__init__":
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        name = ".".join(parts)
        try:
            return importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - the user's code; reported, not re-raised
            raise LoadError(f"importing {str(path)!r} (as {name}) failed: {type(error).__name__}: {error}") from None
    raise LoadError(f"cannot import {str(path)!r} as a Python file")


def load_object(target: str) -> Any:
    """The object named by ``module:attribute`` or ``path/to/file.py:attribute`` (dotted attributes allowed)."""
    source, colon, attribute = target.rpartition(":")
    if not colon or not source or not attribute:
        raise LoadError(f"target {target!r}: expected a built-in backend ({', '.join(BUILTINS)}){_suggest(target, list(BUILTINS))}"
                        f", module:function, or path/to/file.py:function")
    if source.endswith(".py") or "/" in source or "\\" in source:
        module = _import_file(Path(source))
    else:
        try:
            module = importlib.import_module(source)
        except ModuleNotFoundError as error:
            raise LoadError(f"cannot import module {source!r}: {error}") from None
        except Exception as error:  # noqa: BLE001 - the user's code
            raise LoadError(f"importing module {source!r} failed: {type(error).__name__}: {error}") from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            known = [name for name in dir(value) if not name.startswith("_")]
            raise LoadError(f"{source!r} has no attribute {attribute!r}{_suggest(part, known)}")
        value = getattr(value, part)
    return value


def adapter_for(arrays: str, device: str):
    if arrays not in ARRAYS:
        raise LoadError(f"arrays: expected one of {', '.join(ARRAYS)}, got {arrays!r}")
    if arrays == "numpy":
        if device != "cpu":
            raise LoadError(f"device {device!r} needs --arrays torch: NumPy arrays live on the cpu")
        return NumpyAdapter()
    return TorchAdapter(device)


def _declared(backend: Backend, overrides: dict[str, Any]) -> Backend:
    """A new Backend with the overrides (the caller's stays as it was); a LoadError naming a bad field."""
    try:
        return with_overrides(backend, overrides)
    except (TypeError, ValueError) as error:
        raise LoadError(str(error)) from None


def load_backward(target: str) -> Any:
    """The backward callable named by ``target`` (``module:function`` or ``path/to/file.py:function``)."""
    try:
        value = load_object(target)
    except LoadError as error:
        raise LoadError(f"--backward: {error}") from None
    if not callable(value):
        raise LoadError(f"--backward: {target!r} is a {type(value).__name__}, not a function (query, key, value, "
                        f"grad_output, **options) -> (dQ, dK, dV)")
    return value


def resolve(target: str, kind: str | None = None, overrides: dict[str, Any] | None = None,
            arrays: str = "numpy", backward: str | None = None) -> list[Backend]:
    """The backends of ``target``: a built-in (all its kinds, or ``kind``) or a loaded object.

    ``overrides`` are declaration fields that replace the declared ones (for a plain callable they
    complete the default :class:`Declaration`); ``arrays`` picks the adapter of a plain callable;
    ``backward`` names the backward callable of a function target (``module:function``), which declares
    ``backward=True``.
    """
    overrides = dict(overrides or {})
    if backward is not None:
        if target in BUILTINS:
            raise LoadError(f"--backward {backward}: a backward callable belongs to a function TARGET, not to the "
                            f"built-in backend {target!r}, which is differentiated its own way")
        overrides["backward"] = True
    if target in BUILTINS and "device" in overrides:
        raise LoadError(f"the built-in backend {target!r} has a fixed device; choose another built-in "
                        f"({', '.join(BUILTINS)}) instead of --device")
    if target in BUILTINS:
        kinds = builtin(target)
        if kind is not None and kind not in kinds:
            raise LoadError(f"built-in backend {target!r} has no {kind} kind; it has {', '.join(kinds)}")
        chosen = [kinds[kind]] if kind else list(kinds.values())
        backends = [_declared(backend, overrides) for backend in chosen]
    else:
        value = load_object(target)
        if isinstance(value, Backend):
            if kind is not None and value.kind != kind:
                raise LoadError(f"{target!r} is a {value.kind} backend, not {kind}")
            backends = [_declared(value, overrides)]
        elif callable(value):
            try:
                declaration = Declaration(kind=kind or "sdpa").replace(**overrides)
            except (TypeError, ValueError) as error:
                raise LoadError(str(error)) from None
            backends = [Backend(target, value, declaration, adapter_for(arrays, declaration.device))]
        else:
            raise LoadError(f"{target!r} is a {type(value).__name__}, not a function or a kqv Backend")
    if backward is not None:
        function = load_backward(backward)
        backends = [dataclasses.replace(backend, backward=function) for backend in backends]
    for backend in backends:
        missing = backend.unavailable() or backend.backward_missing()
        if missing:
            raise LoadError(f"{target!r} cannot run here: {missing}")
        refused = None if target in BUILTINS else refusal(backend.fn, backend.declaration, f"target {target!r}")
        if refused:
            raise LoadError(refused)
    return [dataclasses.replace(backend, recipe=Recipe(target, backend.kind, overrides, arrays, backward))
            for backend in backends]
