"""The two tables of a report, shared by the terminal and Markdown renderers.

The matrix: one table per kind, a row per clause (in the spec's order), a column per target; a cell
says at which dtypes a status was met when it differs by dtype (:mod:`.cells`).
The conventions: a row per target, a column per convention (fully masked rows, causal alignment,
and what the adapters map: mask polarity, layout), each value with where it comes from.
"""

from __future__ import annotations

from kqv.spec import CLAUSES

from ..declaration import KINDS
from .cells import Part, parts
from .data import ClauseResult, Report, TargetReport


def label(target: TargetReport) -> str:
    return target.target


def kinds(report: Report) -> list[str]:
    present = {target.kind for target in report.targets}
    return [kind for kind in KINDS if kind in present]


def cell(result: ClauseResult | None) -> list[Part]:
    """The cell of one clause of one target: ``[(status, words)]``, ``[]`` when it was not checked."""
    return [] if result is None else parts((d.dtype, d.status) for d in result.dtypes)


def matrix(report: Report, kind: str) -> tuple[list[str], list[tuple[str, list[list[Part]]]]]:
    """``(column labels, [(clause id, [cell per column])])`` for one kind (a cell: :func:`cell`)."""
    targets = [t for t in report.targets if t.kind == kind]
    by_target = [{r.clause: r for r in t.clauses} for t in targets]
    checked = {clause for results in by_target for clause in results}
    rows = [(clause, [cell(results.get(clause)) for results in by_target]) for clause in CLAUSES if clause in checked]
    return [label(t) for t in targets], rows


def conventions(report: Report) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """``(convention names, [(target, kind, ["value (source)" per convention])])``."""
    names: list[str] = []
    for target in report.targets:
        names.extend(name for name in target.conventions if name not in names)
    rows = []
    for target in report.targets:
        cells = []
        for name in names:
            entry = target.conventions.get(name)
            cells.append("" if entry is None else f"{entry['value']} ({entry['source']})")
        rows.append((label(target), target.kind, cells))
    return names, rows
