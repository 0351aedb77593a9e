"""The Python API: ``check(fn, kind=..., **declaration)`` returns a :class:`~kqv.conformance.report.Report`.

``fn`` is a callable following the ``kind`` contract (``sdpa``, ``mha`` or ``pe``), a
:class:`~kqv.conformance.backend.Backend`, or a target string (a built-in name, ``module:function``
or ``path/to/file.py:function``). The keywords are the fields of
:class:`~kqv.conformance.declaration.Declaration` (``dtypes``, ``masked_rows``, ``float_mask``, ...);
``backward`` is True (differentiate through the adapter: torch autograd, ``jax.vjp``) or the backward
callable itself, ``backward(query, key, value, grad_output, **options) -> (dQ, dK, dV)``.
"""

from __future__ import annotations

import dataclasses
import platform
from typing import Any, Callable, Iterable

from .backend import Backend
from .contract import refusal
from .expected_failures import apply, load, target_names
from .kinds import case_from_json
from .loading import adapter_for, resolve
from .options import DEFAULT_TIMEOUT, with_overrides
from .profiles import profile as lookup_profile
from .report.data import Report
from .runner import Progress, run_backend


def versions(backends: Iterable[Backend] = ()) -> dict[str, str]:
    """The versions of what a report was measured with: the libraries imported here, and those the adapters of
    ``backends`` name (ONNX's are imported in the worker processes only)."""
    import sys
    from importlib import metadata

    found = {"python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}"}
    named = {package for backend in backends for package in getattr(backend.adapter, "packages", ())}
    for package in ("kqv", "numpy", "hypothesis", "torch", "jax", "onnxruntime", "onnx", "ml_dtypes"):
        if package in ("torch", "jax", "onnxruntime", "onnx") and package not in sys.modules and package not in named:
            continue  # only what this run used
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def backends_of(fn: Any, kind: str | None, arrays: str, declaration: dict[str, Any], name: str | None) -> list[Backend]:
    """The backends a :func:`check` call names; ``backward`` may be a backward callable, which declares
    ``backward=True`` and differentiates each of them (a string is the target that names one). A TypeError,
    with both signatures, for a callable that cannot take the calls of its kind."""
    backward = declaration.get("backward")
    if callable(backward) or isinstance(backward, str):
        declaration = {**declaration, "backward": True}
    backends = _backends(fn, kind, arrays, declaration, name, backward if isinstance(backward, str) else None)
    if callable(backward):  # not a target string: the backends travel to a worker pickled, with it
        backends = [dataclasses.replace(backend, backward=backward, recipe=None) for backend in backends]
    for backend in backends:
        missing = backend.backward_missing()
        if missing:
            raise ValueError(missing)
    return backends


def _backends(fn: Any, kind: str | None, arrays: str, declaration: dict[str, Any], name: str | None,
              backward: str | None) -> list[Backend]:
    if isinstance(fn, str):
        return resolve(fn, kind, declaration, arrays, backward)
    if backward is not None:
        raise TypeError(f"backward: a target string ({backward!r}) names the backward of a target string fn; give a "
                        f"callable")
    if isinstance(fn, Backend):
        backend = with_overrides(fn, declaration)  # a new Backend: the caller's keeps its declaration
    elif not callable(fn):
        raise TypeError(f"fn: expected a callable, a kqv Backend or a target string, got {type(fn).__name__}")
    else:
        from .declaration import Declaration

        decl = Declaration(kind=kind or "sdpa", **declaration)
        label = name or getattr(fn, "__qualname__", None) or repr(fn)
        backend = Backend(label, fn, decl, adapter_for(arrays, decl.device))
    refused = refusal(backend.fn, backend.declaration, repr(backend.name))
    if refused:
        raise TypeError(refused)
    return [backend]


def check(fn: Callable[..., Any] | Backend | str, kind: str | None = None, *, profile: str = "ci", seed: int = 0,
          clauses: list[str] | None = None, arrays: str = "numpy", name: str | None = None,
          progress: Progress | None = None, isolation: bool | None = None, timeout: float = DEFAULT_TIMEOUT,
          jobs: int = 1, expected_failures_file: str | None = None, **declaration: Any) -> Report:
    """Check ``fn`` clause by clause and return the report (``report.conformant``, ``report.to_json()``, ...).

    ``expected_failures_file`` is a known-deviations file (:mod:`kqv.conformance.expected_failures`; an
    ``ExpectedFailuresError`` when it is not one), whose entries join the backend's declared ones.
    ``isolation`` runs the backend in a worker process (None, the default: on POSIX systems), so that a
    crash or a call longer than ``timeout`` seconds fails its case; ``False`` calls it here (for pdb).
    ``jobs`` > 1 checks that many clauses at once in driver processes (spawned: a script that calls it
    needs the ``if __name__ == "__main__":`` guard), with the verdicts of ``jobs=1``.
    """
    from .jobs import run_jobs

    lookup_profile(profile)
    known = None if expected_failures_file is None else load(expected_failures_file)
    if timeout < 0:
        raise ValueError(f"timeout: expected a number of seconds >= 0, got {timeout!r}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected an integer >= 1, got {jobs!r}")
    backends = backends_of(fn, kind, arrays, declaration, name)
    if jobs > 1:
        targets = run_jobs([(b, b.name) for b in backends], profile, seed, clauses, jobs, progress, isolation, timeout)
    else:
        targets = [run_backend(backend, profile, seed, clauses, progress, isolation=isolation, timeout=timeout)
                   for backend in backends]
    report = Report(targets, profile, seed, versions=versions(backends))
    return report if known is None else apply(report, known, [target_names(b) for b in backends])


def replay(fn: Callable[..., Any] | Backend | str, kind: str | None = None, *, clause: str, case: str,
           arrays: str = "numpy", name: str | None = None, isolation: bool | None = None,
           timeout: float = DEFAULT_TIMEOUT, **declaration: Any) -> Report:
    """Run the check of ``clause`` on the one case ``case`` (the JSON a failure report gives)."""
    parsed = case_from_json(case)
    targets = [run_backend(backend, "quick", 0, [clause], replay=parsed, isolation=isolation, timeout=timeout)
               for backend in backends_of(fn, kind or parsed.kind, arrays, declaration, name)]
    return Report(targets, "replay", 0, versions=versions())
