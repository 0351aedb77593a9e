"""The Markdown form of a report: the root causes of each failing target, the matrix per kind, the conventions,
then every failure in full."""

from __future__ import annotations

from kqv.spec import CLAUSES

from ..links import clause_url
from .causes import affects, headline
from .cells import SEPARATOR, Part
from .data import Report, TargetReport
from .matrix import conventions, kinds, matrix


def _cell(cell: list[Part]) -> str:
    """A cell's words, its failures in bold: ``pass; **FAIL f16**``."""
    return SEPARATOR.join(f"**{words}**" if status == "failed" else words for status, words in cell)


def _root_causes(target: TargetReport) -> list[str]:
    """A failing target's root causes, each with the failures it explains, its smallest counterexample and the
    command that replays it; then the named departures no root cause names."""
    causes = target.root_causes()
    lines = [f"### {target.target} ({target.kind}): {headline(target)}", ""]
    for number, cause in enumerate(causes, 1):
        lines += [f"{number}. **{cause.cause}**", "", f"   {affects(cause)}", ""]
        if cause.counterexample:
            lines += [f"   Smallest counterexample (`{cause.clause}`): `{cause.counterexample.splitlines()[0]}`", ""]
        if cause.reproduce:
            lines += ["   ```bash", f"   {cause.reproduce}", "   ```", ""]
    named = {name for cause in causes for name in cause.departures}
    for departure in target.departures():
        if departure["name"] not in named:
            lines += [f"Also matches \"{departure['name']}\": {departure['description']} "
                      f"({', '.join(f'`{c}`' for c in departure['clauses'])}).", ""]
    return lines


def render(report: Report) -> str:
    lines = ["# kqv conformance report", ""]
    measured = ", ".join(f"{name} {version}" for name, version in report.versions.items())
    lines += [f"Profile `{report.profile}`, seed {report.seed}." + (f" Measured with {measured}." if measured else ""),
              "", f"**Conformant: {'yes' if report.conformant else 'no'}**", ""]
    failing = [target for target in report.targets if not target.conformant]
    if failing:
        lines += ["## Root causes", ""]
        for target in failing:
            lines += _root_causes(target)
    for kind in kinds(report):
        labels, rows = matrix(report, kind)
        lines += [f"## {kind}", "", "| clause | " + " | ".join(labels) + " |",
                  "|---|" + "---|" * len(labels)]
        for clause, cells in rows:
            lines.append(f"| [`{clause}`]({clause_url(clause)}) | " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    names, rows = conventions(report)
    if names:
        lines += ["## Conventions", "", "| target | kind | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        lines += [f"| {target} | {kind} | " + " | ".join(cells) + " |" for target, kind, cells in rows]
        lines.append("")
    if report.unavailable:
        lines += ["## Not checked here", ""]
        lines += [f"- `{u.target}` ({u.kind}): {u.reason}" for u in report.unavailable]
        lines.append("")
    if report.warnings:
        lines += ["## Warnings", ""] + [f"- {warning}" for warning in report.warnings] + [""]
    details = [(t, r) for t in report.targets for r in t.clauses if r.status in ("failed", "xfailed")]
    if details:
        lines += ["## Failures and known departures", ""]
    for target, result in details:
        spec = CLAUSES[result.clause]
        lines += [f"### {target.target} ({target.kind}): `{result.clause}`, {spec.title} ({result.status})", "",
                  f"> {spec.statement}", "", f"[The clause]({clause_url(result.clause)})", "", result.message, ""]
        if result.may_follow_from:
            lines += [f"*{', '.join(result.may_follow_from)} fail(s) too: this failure may follow from it.*", ""]
        if result.counterexample:
            lines += ["Counterexample (shrunk):", "", "```", result.counterexample, "```", ""]
        if result.reproduce:
            lines += ["Reproduce:", "", "```bash", result.reproduce, "```", ""]
    printed = [(t, r, text, count) for t in report.targets for r in t.clauses for text, count in r.printed.items()]
    if printed:
        lines += ["## Printed or warned by the backends", "", "| target | clause | times | message |", "|---|---|---|---|"]
        lines += [f"| {t.target} | `{r.clause}` | {count} | `{text.replace('|', '/').replace('`', chr(39))}` |"
                  for t, r, text, count in printed]
        lines.append("")
    problems = [(t, problem) for t in report.targets for problem in t.problems]
    if problems:
        lines += ["## Outputs missing, malformed or not numbers", "", "| target | case | problem | clauses |",
                  "|---|---|---|---|"]
        lines += [f"| {t.target} | `{problem.case}` | {problem.problem.replace('|', '/')} | "
                  f"{', '.join(f'`{c}`' for c in problem.clauses)} |" for t, problem in problems]
        lines.append("")
    return "\n".join(lines)
