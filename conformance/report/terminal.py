"""The terminal form of a report, with rich: the root causes of each failing target, the matrix per kind, the
conventions, the failures clause by clause."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kqv.spec import CLAUSES

from ..links import clause_url
from .causes import affects, headline
from .cells import SEPARATOR, Part
from .data import Report, TargetReport
from .matrix import conventions, kinds, matrix

STYLES = {"passed": "green", "failed": "bold red", "skipped": "dim", "xfailed": "yellow", "xpassed": "yellow"}


def _cell(cell: list[Part]) -> Text:
    """A cell's words, each part in the colour of its status: ``pass; xfail f64`` green, then yellow."""
    text = Text()
    for index, (status, words) in enumerate(cell):
        if index:
            text.append(SEPARATOR)
        text.append(words, style=STYLES.get(status, ""))
    return text


PRINTED_SHOWN = 3  # distinct messages per clause on the terminal; the JSON has them all


def _printed(report: Report, console: Console) -> None:
    """What the backends printed or warned, once per distinct message and clause, with its count."""
    table = Table(title="printed or warned by the backends (each distinct message once)", title_justify="left")
    for column in ("target", "clause", "times", "message"):
        table.add_column(column, justify="right" if column == "times" else "left")
    for target in report.targets:
        for result in target.clauses:
            messages = sorted(result.printed.items(), key=lambda item: -item[1])
            for text, count in messages[:PRINTED_SHOWN]:
                table.add_row(target.target, result.clause, str(count), escape(text))
            if len(messages) > PRINTED_SHOWN:
                table.add_row(target.target, result.clause, "", f"[dim]and {len(messages) - PRINTED_SHOWN} more "
                              f"(--json has them all)[/dim]")
    if table.row_count:
        console.print(table)


PROBLEMS_SHOWN = 10  # cases whose outputs are missing or malformed; the JSON has them all


def _problems(report: Report, console: Console) -> None:
    """The cases of an export whose outputs are missing, malformed or not numbers (``kqv judge``)."""
    table = Table(title="outputs missing, malformed or not numbers, by case", title_justify="left")
    for column in ("target", "case", "problem", "clauses"):
        table.add_column(column)
    for target in report.targets:
        for problem in target.problems[:PROBLEMS_SHOWN]:
            table.add_row(target.target, problem.case, escape(problem.problem), ", ".join(problem.clauses))
        if len(target.problems) > PROBLEMS_SHOWN:
            table.add_row(target.target, "", f"[dim]and {len(target.problems) - PROBLEMS_SHOWN} more cases (--json "
                          f"has them all)[/dim]", "")
    if table.row_count:
        console.print(table)


def _root_causes(target: TargetReport, console: Console) -> None:
    """A target's failures, one entry per root cause, with its smallest counterexample and reproducer; then the named
    departures that no root cause names (seen on kqv's probe only)."""
    causes = target.root_causes()
    body = []
    for number, cause in enumerate(causes, 1):
        body += [f"[bold]{number}. {escape(cause.cause)}[/bold]", f"   {escape(affects(cause))}"]
        if cause.counterexample:
            first = cause.counterexample.splitlines()[0]
            body.append(f"   smallest counterexample ({cause.clause}): {escape(first)}")
        if cause.reproduce:
            body.append(f"   reproduce: {escape(cause.reproduce)}")
    named = {name for cause in causes for name in cause.departures}
    for departure in target.departures():
        if departure["name"] not in named:
            body.append(f"also matches \"{escape(departure['name'])}\": {escape(departure['description'])} "
                        f"({', '.join(departure['clauses'])})")
    console.print(Panel("\n".join(body), title=f"ROOT CAUSES {escape(target.target)} ({target.kind}): "
                        f"{headline(target)}", title_align="left", border_style="red"))


def show(report: Report, console: Console, command: str = "kqv check") -> None:
    """Print the whole report: the root causes of each failing target first, then the matrix, the conventions and
    the failures clause by clause (``command``, the one that made it, names it in the last line)."""
    for target in report.targets:
        if not target.conformant:
            _root_causes(target, console)
    for kind in kinds(report):
        labels, rows = matrix(report, kind)
        table = Table(title=f"{kind}: clauses by backend", title_justify="left")
        table.add_column("clause")
        for name in labels:
            table.add_column(name, justify="center")
        for clause, cells in rows:
            table.add_row(Text(clause, style=f"link {clause_url(clause)}"), *(_cell(c) for c in cells))
        console.print(table)
    names, rows = conventions(report)
    if names:
        table = Table(title="conventions", title_justify="left")
        for column in ("target", "kind", *names):
            table.add_column(column)
        for target, kind, cells in rows:
            table.add_row(target, kind, *cells)
        console.print(table)
    for target in report.targets:
        for result in target.clauses:
            if result.status not in ("failed", "xfailed"):
                continue
            spec = CLAUSES[result.clause]
            body = [f"[bold]{escape(spec.statement)}[/bold]", escape(clause_url(result.clause)), "",
                    escape(result.message)]
            if result.may_follow_from:
                body += ["", f"[yellow]{', '.join(result.may_follow_from)} fail(s) too: this failure may follow from "
                             f"it; fix that first.[/yellow]"]
            if result.counterexample:
                body += ["", "[bold]counterexample (shrunk):[/bold]", escape(result.counterexample)]
            if result.reproduce:
                body += ["", "[bold]reproduce:[/bold]", escape(result.reproduce)]
            style = "red" if result.status == "failed" else "yellow"
            console.print(Panel("\n".join(body), title=f"{result.status.upper()} {target.target} ({target.kind}): "
                                f"{result.clause}, {escape(spec.title)}", title_align="left", border_style=style))
    _printed(report, console)
    _problems(report, console)
    for target in report.targets:
        if target.ran_in.startswith("this process ("):
            console.print(f"[dim]{escape(target.target)} ({target.kind}) ran in {escape(target.ran_in)}[/dim]")
    for missing in report.unavailable:
        console.print(f"[dim]not checked: {missing.target} ({missing.kind}): {escape(missing.reason)}[/dim]")
    for warning in report.warnings:
        console.print(f"[yellow]warning: {escape(warning)}[/yellow]")
    summary = ", ".join(f"{t.target} ({t.kind}) {'conformant' if t.conformant else f'NOT conformant: {headline(t)},'}"
                        f" in {t.seconds:.1f} s" for t in report.targets)
    verdict = "[green]conformant[/green]" if report.conformant else "[bold red]not conformant[/bold red]"
    console.print(f"{command} ({report.profile} profile, seed {report.seed}): {verdict}. {summary}")
