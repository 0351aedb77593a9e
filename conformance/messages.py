"""Every failure message of the suite, built here, so that the same fact reads the same in every check.

The family of :func:`outside_bound` reads like ``numpy.testing.assert_allclose``: how many elements
are off, the worst one (where, got, expected, its error against its own bound) and the worst
relative error; NaN or inf where the spec has a number is counted and located separately. The
others say what the call got wrong (its shape, its dtype, its inputs, its repeatability) in words
that name both sides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

if TYPE_CHECKING:
    from .compare import Mismatch


def at(index: Iterable[int]) -> str:
    """An element's index as ``(i, j, k)``."""
    return f"({', '.join(str(int(i)) for i in index)})"


def outside_bound(found: "Mismatch") -> str:
    """``N of M elements of <what> are outside the bound; worst at (..): got .., expected .., |error| .. > bound ..``."""
    head = f"{found.count} of {found.total} elements of {found.what} are outside the bound"
    if found.nonfinite:
        head += f" ({found.nonfinite} of them NaN or inf where the spec has a number)"
    if np.isnan(found.expected):
        return f"{head}; at {at(found.index)}: got {found.actual!r}, the spec asks for NaN"
    if not np.isfinite(found.actual):
        return f"{head}; first at {at(found.index)}: got {found.actual!r}, expected {found.expected:.6g}"
    ratio = found.error / found.bound if found.bound > 0 else float("inf")
    times = "(the bound is 0: an exact value is required)" if found.bound == 0 else f"({ratio:.3g} x the bound)"
    return (f"{head}; worst at {at(found.index)}: got {found.actual:.9g}, expected {found.expected:.9g}, "
            f"|error| {found.error:.3g} > bound {found.bound:.3g} {times}; "
            f"worst relative error {found.worst_relative:.3g}")


def nonfinite(count: int, total: int, index: Iterable[int], got: float, expected: float, what: str = "the output") -> str:
    """``N of M elements of <what> are NaN or inf where the spec has a number; first at (..): got .., expected ..``."""
    return (f"{count} of {total} elements of {what} are NaN or inf where the spec has a number; first at {at(index)}: "
            f"got {got!r}, expected {expected:.6g}")


def outside_range(count: int, total: int, index: Iterable[int], got: float, low: float, high: float,
                  bound: float) -> str:
    """The convex hull of the values a row attends to (clause ``output.convex-hull``)."""
    return (f"{count} of {total} elements of the output lie outside the range of the values their row attends to; "
            f"first at {at(index)}: got {got!r}, range [{low:.6g}, {high:.6g}] widened by the bound {bound:.3g}")


def below_cap_floor(count: int, total: int, index: Iterable[int], got: float, floor: float, bound: float,
                    cap: float) -> str:
    """A weight below what a cap allows (clause ``softcap.bounded``)."""
    return (f"{count} of {total} weights (the output with V picking out keys) lie below exp(-2c) times their row's largest, "
            f"which softcap c = {cap:g} forbids; first at {at(index)}: got {got!r} < {floor:.6g} by more than the "
            f"bound {bound:.3g}")


def wrong_shape(got: tuple[int, ...], expected: tuple[int, ...], layout: str) -> str:
    return f"output shape {tuple(got)}, expected {tuple(expected)} = {layout}"


def wrong_dtype(got: str, inputs: str) -> str:
    return f"output dtype {got} for {inputs} inputs, expected {inputs}"


def unknown_dtype(got: str, known: Iterable[str]) -> str:
    return f"output dtype {got}, expected one of {', '.join(known)}"


def undeclared_dtype(got: str, declared: Iterable[str]) -> str:
    return f"output dtype {got}, but the backend declares {', '.join(declared)}"


def not_deterministic(first: np.ndarray, second: np.ndarray) -> str:
    """Two calls on the same inputs, with the first element where they differ when the shapes agree."""
    where = ""
    if first.shape == second.shape:
        differ = np.argwhere(~((first == second) | (np.isnan(first) & np.isnan(second))))
        if len(differ):
            index = tuple(int(i) for i in differ[0])
            where = f"; first difference at {at(index)}: {first[index]!r} then {second[index]!r}"
        elif first.dtype != second.dtype:
            where = f"; dtype {first.dtype} then {second.dtype}"
    else:
        where = f"; shape {first.shape} then {second.shape}"
    return f"two calls on the same inputs gave different outputs{where}"


def inputs_written(names: Iterable[str]) -> str:
    return f"the backend wrote to its input(s) {', '.join(names)}"


def backend_raised(error: BaseException) -> str:
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else ""
    return f"the backend raised {type(error).__name__}: {first_line}"[:500]


def declare_unsupported(asked: list[str], declarations: list[tuple[str, str]]) -> str:
    """After a ``NotImplementedError``: what the call asked for and the declarations that mark it unsupported."""
    which = "this" if len(asked) == 1 else "one of these"
    ways = " or ".join(f"{flag} ({python})" for flag, python in declarations)
    return (f"; the call that raised it had {', '.join(asked)}: if the implementation does not support {which}, "
            f"declare it: {ways}")


def backend_returned(problem: Any) -> str:
    """``problem`` says what was returned instead of an array of the backend's type, e.g. ``returned builtins.list``."""
    return f"the backend {problem}"


def not_a_tuple(got: Any, names: tuple[str, ...], kwargs: dict[str, Any]) -> str:
    """A call asked for further results (``return_lse=True``) that did not return the tuple of them."""
    asked = ", ".join(f"{name}={value!r}" for name, value in kwargs.items() if name.startswith("return_"))
    length = f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""
    return (f"the backend returned {type(got).__module__}.{type(got).__qualname__}{length} with {asked}, "
            f"expected a tuple ({', '.join(names)})")


def not_three_gradients(got: Any, names: tuple[str, ...] = ("query", "key", "value")) -> str:
    """A backward that did not return one gradient for each argument ``names`` (``(dQ, dK, dV)`` for sdpa)."""
    length = f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""
    expected = "(dQ, dK, dV)" if tuple(names) == ("query", "key", "value") else \
        "(" + ", ".join("d" + name for name in names) + ")"
    return f"the backward returned {type(got).__module__}.{type(got).__qualname__}{length}, expected a tuple {expected}"


def gradient_wrong_shape(name: str, got: tuple[int, ...], expected: tuple[int, ...], argument: str) -> str:
    return f"{name} shape {tuple(got)}, expected {tuple(expected)}, the shape of {argument}"


def gradient_wrong_dtype(name: str, got: str, expected: str, argument: str) -> str:
    return f"{name} dtype {got}, expected {expected}, the dtype of {argument}"


def gradient_inputs_written(names: Iterable[str]) -> str:
    return f"the backward wrote to its input(s) {', '.join(names)}"


def gradients_not_deterministic(name: str, first: np.ndarray, second: np.ndarray) -> str:
    """Two backward passes on the same inputs and dO that differ in gradient ``name``."""
    said = not_deterministic(first, second)
    return said.replace("two calls on the same inputs gave different outputs",
                        f"two backward passes on the same inputs and dO gave different {name}")


def lse_wrong_shape(got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    return f"lse shape {tuple(got)}, expected {tuple(expected)} = (..., L), the output's batch dims and L"


def lse_wrong_dtype(got: str, query: str, accepted: tuple[str, ...]) -> str:
    return (f"lse dtype {got} for {query} inputs, expected one of {', '.join(accepted)} (float32 or wider, or the "
            "inputs' dtype)")


def lse_not_empty(count: int, total: int, index: Iterable[int], got: float) -> str:
    """An lse other than ``-inf`` on a row that keeps no key (clause ``lse.empty-row``)."""
    return (f"{count} of {total} rows that keep no key have an lse other than -inf (the log of the empty sum); "
            f"first at {at(index)}: got {got!r}")


def masked_rows_declared(declared: str, matched: list[str], row: tuple[int, ...], sample: str) -> str:
    seen = f"it follows {' / '.join(matched)}" if matched else "it follows none of zeros, nan, uniform"
    return f"a row that keeps no key must follow the declared convention {declared!r}, but {seen}; row {row}: {sample}"


def masked_rows_unknown(row: tuple[int, ...], sample: str) -> str:
    return f"a row that keeps no key returned neither zeros, NaN nor the mean of the values; row {row}: {sample}"


def masked_rows_inconsistent(first: str, other: str) -> str:
    return (f"rows that keep no key followed {first} in one example and {other} in another: the convention must be "
            f"the same every time")
