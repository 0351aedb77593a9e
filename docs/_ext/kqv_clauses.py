"""Sphinx extension of kqv: render clauses of :mod:`kqv.spec` and link to them.

Directives (usable from MyST Markdown as ```` ```{clause} id ```` and ```` ```{clauses} ````):

``clause``
    Renders one clause: an anchor ``clause-<id>``, its id and title, the statement, the display
    math of :attr:`kqv.spec.Clause.latex` and the sympy-checked derivation steps.
``clauses``
    Renders every clause of a section (``:section: masking``), in reading order; ``:exclude:``
    takes ids (separated by spaces or commas) rendered elsewhere.

Role ``clause`` (``{clause}`mask.causal.top-left```) links to a clause's anchor through the
``kqv`` domain, so a nitpicky build resolves it. An unknown id or section is a warning naming it
and the closest known ids, which ``-W`` makes a build error. With ``kqv_clauses_require_all``
set, a clause rendered on no page or on two pages is a warning too, and so is a clause rendered on
another page than its :attr:`kqv.spec.Clause.page` (the page the reports link to).
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.domains import Domain, ObjType
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole
from sphinx.util.nodes import make_refnode

from kqv.spec import CLAUSES, SECTIONS, Clause

logger = logging.getLogger(__name__)

ANCHOR_PREFIX = "clause-"


def anchor(clause_id: str) -> str:
    """The HTML id of a clause's anchor."""
    return ANCHOR_PREFIX + clause_id


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown kqv {kind} {name!r}{hint}"


class ClauseDomain(Domain):
    """Holds where each clause is rendered, and resolves the ``clause`` role."""

    name = "kqv"
    label = "kqv"
    object_types = {"clause": ObjType("clause", "clause")}
    initial_data: dict[str, Any] = {"clauses": {}}  # id -> (docname, anchor, title)

    @property
    def clauses(self) -> dict[str, tuple[str, str, str]]:
        return self.data.setdefault("clauses", {})

    def note_clause(self, item: Clause, location: nodes.Node) -> None:
        if item.page and item.page != self.env.docname:
            logger.warning("clause %r is rendered on %s but its page is %r (kqv.spec.Clause.page, which the reports "
                           "link to)", item.id, self.env.docname, item.page, location=location, type="kqv",
                           subtype="page")
        if item.id in self.clauses:
            other = self.clauses[item.id][0]
            logger.warning("clause %r is rendered twice (also in %s)", item.id, other,
                           location=location, type="kqv", subtype="duplicate")
        self.clauses[item.id] = (self.env.docname, anchor(item.id), item.title)

    def clear_doc(self, docname: str) -> None:
        for clause_id, (doc, _, _) in list(self.clauses.items()):
            if doc == docname:
                del self.clauses[clause_id]

    def merge_domaindata(self, docnames: Any, otherdata: dict[str, Any]) -> None:
        for clause_id, entry in otherdata["clauses"].items():
            if entry[0] in docnames:
                self.clauses[clause_id] = entry

    def resolve_xref(self, env: BuildEnvironment, fromdocname: str, builder: Any, typ: str,
                     target: str, node: addnodes.pending_xref, contnode: nodes.Element) -> nodes.Element | None:
        if typ != "clause" or target not in self.clauses:
            return None
        docname, labelid, title = self.clauses[target]
        return make_refnode(builder, fromdocname, docname, labelid, contnode, f"{target}: {title}")

    def resolve_any_xref(self, env: BuildEnvironment, fromdocname: str, builder: Any, target: str,
                         node: addnodes.pending_xref, contnode: nodes.Element) -> list[tuple[str, nodes.Element]]:
        ref = self.resolve_xref(env, fromdocname, builder, "clause", target, node, contnode)
        return [] if ref is None else [("kqv:clause", ref)]

    def get_objects(self) -> Iterable[tuple[str, str, str, str, str, int]]:
        for clause_id, (docname, labelid, _) in self.clauses.items():
            yield clause_id, clause_id, "clause", docname, labelid, 1


def _paragraph(*children: nodes.Node, classes: list[str] | None = None) -> nodes.paragraph:
    para = nodes.paragraph("", "", *children)
    if classes:
        para["classes"].extend(classes)
    return para


def _math(latex: str, docname: str) -> nodes.math_block:
    return nodes.math_block(latex, latex, docname=docname, number=None, label=None, nowrap=False)


def render_clause(item: Clause, directive: SphinxDirective) -> nodes.container:
    """The doctree of one clause, anchored at ``clause-<id>``."""
    env = directive.env
    box = nodes.container(classes=["kqv-clause"], ids=[anchor(item.id)])
    directive.set_source_info(box)

    heading = nodes.rubric("", "", classes=["kqv-clause-title"])
    heading += nodes.Text(f"{item.title} ")
    heading += nodes.literal(item.id, item.id, classes=["kqv-clause-id"])
    box += heading
    box += _paragraph(nodes.Text(item.statement), classes=["kqv-clause-statement"])
    if item.latex:
        box += _math(item.latex, env.docname)
    if item.symbols:
        symbols = nodes.bullet_list(classes=["kqv-clause-symbols"])
        for name, meaning in item.symbols.items():
            symbols += nodes.list_item("", _paragraph(nodes.literal(name, name), nodes.Text(f": {meaning}")))
        box += _paragraph(nodes.strong("Symbols", "Symbols"))
        box += symbols
    if item.derivation is not None and item.derivation.steps:
        box += _paragraph(nodes.strong("Derivation", "Derivation"),
                          nodes.Text(" (every step is checked by sympy, see kqv selfcheck):"))
        steps = nodes.enumerated_list(enumtype="arabic", prefix="", suffix=".", classes=["kqv-derivation"])
        for step in item.derivation.steps:
            steps += nodes.list_item("", _paragraph(nodes.Text(step.text)), _math(step.latex, env.docname))
        box += steps
    env.get_domain("kqv").note_clause(item, box)  # type: ignore[attr-defined]
    return box


class ClauseDirective(SphinxDirective):
    """``clause <id>``: render one clause of :mod:`kqv.spec`."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        clause_id = self.arguments[0].strip()
        if clause_id not in CLAUSES:
            logger.warning(_unknown("clause id", clause_id, CLAUSES), location=self.get_location(),
                           type="kqv", subtype="unknown")
            return []
        return [render_clause(CLAUSES[clause_id], self)]


class ClausesDirective(SphinxDirective):
    """``clauses`` with ``:section: key``: render every clause of a section."""

    has_content = False
    option_spec = {"section": directives.unchanged_required, "exclude": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        section = self.options.get("section", "").strip()
        keys = [key for key, _ in SECTIONS]
        if section not in keys:
            logger.warning(_unknown("section", section, keys), location=self.get_location(),
                           type="kqv", subtype="unknown")
            return []
        excluded = self.options.get("exclude", "").replace(",", " ").split()
        for clause_id in excluded:
            if clause_id not in CLAUSES or CLAUSES[clause_id].section != section:
                logger.warning(_unknown(f"clause id of section {section!r}", clause_id,
                                        [c.id for c in CLAUSES.values() if c.section == section]),
                               location=self.get_location(), type="kqv", subtype="unknown")
        return [render_clause(item, self) for item in CLAUSES.values()
                if item.section == section and item.id not in excluded]


class ClauseRole(SphinxRole):
    """``clause`` role: a cross-reference to the anchor of a clause."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        clause_id = self.text.strip()
        if clause_id not in CLAUSES:
            logger.warning(_unknown("clause id", clause_id, CLAUSES), location=self.get_location(),
                           type="kqv", subtype="unknown")
            return [nodes.literal(self.rawtext, clause_id)], []
        ref = addnodes.pending_xref(self.rawtext, refdomain="kqv", reftype="clause", reftarget=clause_id,
                                    refdoc=self.env.docname, refexplicit=False, refwarn=True)
        ref += nodes.literal(clause_id, clause_id, classes=["xref", "kqv-clause-ref"])
        self.set_source_info(ref)
        return [ref], []


def check_every_clause_rendered(app: Sphinx, env: BuildEnvironment) -> None:
    if not app.config.kqv_clauses_require_all:
        return
    rendered = env.get_domain("kqv").clauses  # type: ignore[attr-defined]
    missing = [clause_id for clause_id in CLAUSES if clause_id not in rendered]
    if missing:
        logger.warning("clauses rendered on no page: %s", ", ".join(missing), type="kqv", subtype="missing")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("kqv_clauses_require_all", False, "env", [bool])
    app.add_domain(ClauseDomain)
    app.add_directive("clause", ClauseDirective)
    app.add_directive("clauses", ClausesDirective)
    app.add_role("clause", ClauseRole())
    app.connect("env-check-consistency", check_every_clause_rendered)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
