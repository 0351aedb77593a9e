"""Sphinx extension of kqv: the conformance suite's tables, generated from the code and from reports.

Directives (MyST: ```` ```{kqv-checks} ````):

``kqv-checks``
    With ``:kind: sdpa`` (or ``mha``, ``pe``): a table of the checks of that kind, one row per
    check, the clause it enforces (a link to the clause) and what it does (its docstring); the
    checks of the variants of the contract are left to ``:variant: gqa``, which lists those of one
    variant.
``kqv-declaration``
    The fields of :class:`kqv.conformance.Declaration`: name, default and meaning.
``kqv-profiles``
    The profiles: examples per check and dtype, and the largest sizes drawn; then the draws at tile
    boundaries: how many, and the sizes.
``kqv-report``
    Takes a path to a JSON report written by ``kqv check --json`` (relative to the page) and
    renders its matrix of clauses by backends per kind (a cell says at which dtypes a status was
    met when it differs by dtype: ``pass; xfail f64``), its conventions table, each target's
    dtypes and time, the known departures seen (with their reproducers), the backends not
    available where it was measured, and the versions it was measured with. With ``:summary:``,
    one row per target instead: its dtypes, its counts of clauses passed, departed as declared,
    skipped and failed, and its verdict. An unreadable report is a build error.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from kqv.conformance.checks import checks_for
from kqv.conformance.declaration import FIELDS
from kqv.conformance.profiles import PROFILES
from kqv.conformance.report.cells import parts, text
from kqv.spec import CLAUSES

logger = logging.getLogger(__name__)



def _matrix_cell(result: dict[str, Any] | None) -> str:
    """The words of a clause's cell from its per-dtype results (``pass; xfail f64``); empty when not checked."""
    return "" if result is None else text(parts((d["dtype"], d["status"]) for d in result["dtypes"]))


def _clause_ref(clause_id: str, docname: str) -> nodes.Node:
    ref = addnodes.pending_xref("", refdomain="kqv", reftype="clause", reftarget=clause_id, refdoc=docname,
                                refexplicit=False, refwarn=True)
    ref += nodes.literal(clause_id, clause_id, classes=["xref", "kqv-clause-ref"])
    return ref


def _cell(content: Any) -> nodes.entry:
    entry = nodes.entry()
    if isinstance(content, nodes.Node):
        entry += nodes.paragraph("", "", content)
    else:
        entry += nodes.paragraph(str(content), str(content))
    return entry


def _table(header: list[str], rows: list[list[Any]], widths: list[int] | None = None) -> nodes.table:
    table = nodes.table(classes=["kqv-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths or [1] * len(header):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    row = nodes.row()
    for title in header:
        row += _cell(title)
    head += row
    group += head
    body = nodes.tbody()
    for cells in rows:
        row = nodes.row()
        for content in cells:
            row += _cell(content)
        body += row
    group += body
    return table


def _measured(report: dict[str, Any]) -> nodes.paragraph:
    """What a saved report was measured with: its profile, seed and versions."""
    versions = ", ".join(f"{name} {version}" for name, version in report.get("versions", {}).items())
    return nodes.paragraph("", f"Profile {report['profile']}, seed {report['seed']}; measured with {versions}.")


class ChecksDirective(SphinxDirective):
    """``kqv-checks`` with ``:kind:``: the checks of that kind."""

    option_spec = {"kind": directives.unchanged_required, "variant": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        kind = self.options.get("kind", "").strip()
        variant = (self.options.get("variant") or "").strip() or None
        checks = [check for check in checks_for(kind) if check.variant == variant]
        if not checks:
            logger.warning("kqv-checks: no check of kind %r and variant %r", kind, variant,
                           location=self.get_location())
            return []
        rows = [[_clause_ref(check.clause, self.env.docname), check.doc,
                 "once" if not check.per_dtype else "each dtype"] for check in checks]
        return [_table(["clause", "what the check does", "runs"], rows, [3, 8, 2])]


class DeclarationDirective(SphinxDirective):
    """``kqv-declaration``: the fields of a backend's declaration."""

    def run(self) -> list[nodes.Node]:
        rows = []
        for name, item in FIELDS.items():
            default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
            rows.append([nodes.literal(name, name), nodes.literal(repr(default), repr(default)), item.metadata["help"]])
        return [_table(["field", "default", "meaning"], rows, [3, 3, 8])]


class ProfilesDirective(SphinxDirective):
    """``kqv-profiles``: the profiles and their sizes."""

    def run(self) -> list[nodes.Node]:
        rows = [[nodes.literal(p.name, p.name), p.examples, p.max_length, p.max_width, p.max_heads, p.max_pe_length,
                 p.max_d_model] for p in PROFILES.values()]
        tiles = [[nodes.literal(p.name, p.name), p.tile_examples, p.tile_clause_examples,
                  ", ".join(map(str, p.length_boundaries())), ", ".join(map(str, p.width_boundaries())),
                  ", ".join(map(str, p.pe_length_boundaries()))] for p in PROFILES.values()]
        return [_table(["profile", "examples per check and dtype", "L, S up to", "E, Ev, d_k up to", "heads up to",
                        "PE length up to", "d_model up to (pe)"], rows),
                nodes.paragraph("", "At tile boundaries (clause attention.tile-boundaries): the cases each check "
                                    "judged against the reference draws per dtype with one size at a boundary, the "
                                    "cases of the clause itself (every size at a boundary), and the sizes drawn."),
                _table(["profile", "boundary cases per check and dtype", "attention.tile-boundaries cases per dtype",
                        "L, S", "E, Ev, d_k, d_model", "PE length"], tiles, [2, 2, 2, 6, 5, 5])]


class ReportDirective(SphinxDirective):
    """``kqv-report <path.json>``: the matrix and conventions of a saved report."""

    required_arguments = 1
    option_spec = {"summary": directives.flag}

    def run(self) -> list[nodes.Node]:
        path = Path(self.env.doc2path(self.env.docname)).parent / self.arguments[0]
        self.env.note_dependency(str(path))
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            logger.warning("kqv-report: cannot read %s: %s", path, error, location=self.get_location())
            return []
        if "summary" in self.options:
            return self._summary(report)
        result: list[nodes.Node] = []
        result.append(_measured(report))
        for kind in ("sdpa", "mha", "pe"):
            targets = [t for t in report["targets"] if t["kind"] == kind]
            if not targets:
                continue
            results = [{c["clause"]: c for c in t["clauses"]} for t in targets]
            clauses = [c for c in CLAUSES if any(c in r for r in results)]
            rows = [[_clause_ref(clause, self.env.docname), *(_matrix_cell(r.get(clause)) for r in results)]
                    for clause in clauses]
            result.append(nodes.rubric("", f"{kind}: clauses by backend"))
            result.append(_table(["clause", *(t["target"] for t in targets)], rows))
        names: list[str] = []
        for target in report["targets"]:
            names.extend(n for n in target["conventions"] if n not in names)
        rows = [[t["target"], t["kind"], *(f"{t['conventions'][n]['value']} ({t['conventions'][n]['source']})"
                                           if n in t["conventions"] else "" for n in names)]
                for t in report["targets"]]
        result.append(nodes.rubric("", "conventions"))
        result.append(_table(["target", "kind", *names], rows))
        timings = [[t["target"], t["kind"], ", ".join(t.get("dtypes", [])),
                    ", ".join(t.get("variants", [])) or ("none" if t["kind"] == "sdpa" else ""),
                    f"{t.get('seconds', 0):.1f} s"] for t in report["targets"]]
        result.append(nodes.rubric("", "dtypes, variants and time"))
        result.append(_table(["target", "kind", "dtypes", "variants (sdpa)", "time"], timings))
        departures = [[t["target"], _clause_ref(c["clause"], self.env.docname),
                       ", ".join(d["dtype"] or "all" for d in c["dtypes"] if d["status"] == "xfailed"),
                       nodes.literal("", c["reproduce"] or "")]
                      for t in report["targets"] for c in t["clauses"] if c["status"] == "xfailed"]
        if departures:
            result.append(nodes.rubric("", "known departures seen (xfail)"))
            result.append(_table(["target", "clause", "dtypes", "reproduce"], departures))
        if report.get("unavailable"):
            result.append(nodes.rubric("", "not checked where it was measured"))
            result.append(_table(["target", "kind", "reason"],
                                 [[u["target"], u["kind"], u["reason"]] for u in report["unavailable"]]))
        return result

    def _summary(self, report: dict[str, Any]) -> list[nodes.Node]:
        """One row per target: its verdict and how many clauses passed, departed as declared, were skipped or failed."""
        rows = []
        for target in report["targets"]:
            counts = {status: sum(c["status"] == status for c in target["clauses"])
                      for status in ("passed", "xfailed", "skipped", "failed")}
            rows.append([target["target"], target["kind"], ", ".join(target.get("dtypes", [])), counts["passed"],
                         counts["xfailed"], counts["skipped"], counts["failed"],
                         "conformant" if target["conformant"] else "NOT conformant"])
        rows += [[u["target"], u["kind"], "", "", "", "", "", f"not checked: {u['reason']}"]
                 for u in report.get("unavailable", [])]
        return [_table(["target", "kind", "dtypes", "pass", "known departures", "skipped", "FAIL", "verdict"], rows,
                       [4, 2, 4, 1, 2, 1, 1, 4]),
                _measured(report)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kqv-checks", ChecksDirective)
    app.add_directive("kqv-declaration", DeclarationDirective)
    app.add_directive("kqv-profiles", ProfilesDirective)
    app.add_directive("kqv-report", ReportDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
