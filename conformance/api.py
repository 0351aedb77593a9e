"""The Python API: ``check(fn, kind=..., **declaration)`` returns a :class:`~kqv.conformance.report.Report`.

``fn`` is a callable following the ``kind`` contract (``sdpa``, ``mha`` or ``pe``), a
:class:`~kqv.conformance.backend.Backend`, or a target string (a built-in name, ``module:function``
or ``path/to/file.py:function``). The keywords are the fields of
:class:`~kqv.conformance.declaration.Declaration` (``dtypes``, ``masked_rows``, ``float_mask``, ...).
"""

from __future__ import annotations

import platform
from typing import Any, Callable

from .backend import Backend
from .kinds import case_from_json
from .loading import adapter_for, resolve
from .options import with_overrides
from .profiles import profile as lookup_profile
from .report.data import Report
from .runner import Progress, run_backend


def versions() -> dict[str, str]:
    """The versions of what a report was measured with."""
    import sys
    from importlib import metadata

    found = {"python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}"}
    for package in ("kqv", "numpy", "hypothesis", "torch", "jax", "onnxruntime", "onnx", "ml_dtypes"):
        if package in ("torch", "jax", "onnxruntime", "onnx") and package not in sys.modules:
            continue  # only what this run used
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def backends_of(fn: Any, kind: str | None, arrays: str, declaration: dict[str, Any], name: str | None) -> list[Backend]:
    """The backends a :func:`check` call names."""
    if isinstance(fn, str):
        return resolve(fn, kind, declaration, arrays)
    if isinstance(fn, Backend):
        return [with_overrides(fn, declaration)]  # a new Backend: the caller's keeps its declaration
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, a kqv Backend or a target string, got {type(fn).__name__}")
    from .declaration import Declaration

    decl = Declaration(kind=kind or "sdpa", **declaration)
    label = name or getattr(fn, "__qualname__", None) or repr(fn)
    return [Backend(label, fn, decl, adapter_for(arrays, decl.device))]


def check(fn: Callable[..., Any] | Backend | str, kind: str | None = None, *, profile: str = "ci", seed: int = 0,
          clauses: list[str] | None = None, arrays: str = "numpy", name: str | None = None,
          progress: Progress | None = None, **declaration: Any) -> Report:
    """Check ``fn`` clause by clause and return the report (``report.conformant``, ``report.to_json()``, ...)."""
    lookup_profile(profile)
    targets = [run_backend(backend, profile, seed, clauses, progress)
               for backend in backends_of(fn, kind, arrays, declaration, name)]
    return Report(targets, profile, seed, versions=versions())


def replay(fn: Callable[..., Any] | Backend | str, kind: str | None = None, *, clause: str, case: str,
           arrays: str = "numpy", name: str | None = None, **declaration: Any) -> Report:
    """Run the check of ``clause`` on the one case ``case`` (the JSON a failure report gives)."""
    parsed = case_from_json(case)
    targets = [run_backend(backend, "quick", 0, [clause], replay=parsed)
               for backend in backends_of(fn, kind or parsed.kind, arrays, declaration, name)]
    return Report(targets, "replay", 0, versions=versions())
