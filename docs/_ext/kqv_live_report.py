"""Sphinx extension of kqv: a report of a real ``kqv check`` run, drawn as a terminal picture at build time.

Directive ``kqv-live-report`` (```` ```{kqv-live-report} path/to/file.py:function ```` in MyST):
checks the target (relative to the repository root) with :func:`kqv.conformance.check`, prints
the report with the terminal renderer ``kqv check`` uses, and embeds what the terminal showed as an
SVG picture, under the command line that reproduces it. Options: ``:kind:``, ``:profile:``
(default ``quick``), ``:seed:`` (default 0), ``:clauses:`` (space-separated clause ids; default
all) and ``:expect:`` (``conformant`` or ``not-conformant``): a verdict other than the expected
one is a build error, so a page cannot show a bug that is no longer caught.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

WIDTH = 104  # terminal columns of the picture

# The picture's frame: rich's placeholders, fonts the reader's machine has (nothing fetched).
SVG = """<svg class="kqv-terminal" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="img">
<style>
.{unique_id}-matrix {{ font-family: "Fira Code", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: {char_height}px; line-height: {line_height}px; }}
.{unique_id}-title {{ font-size: 16px; font-family: sans-serif; }}
{styles}
</style>
<defs>
<clipPath id="{unique_id}-clip-terminal"><rect x="0" y="0" width="{terminal_width}" height="{terminal_height}" />
</clipPath>
{lines}
</defs>
{chrome}
<g transform="translate({terminal_x}, {terminal_y})" clip-path="url(#{unique_id}-clip-terminal)">
{backgrounds}
<g class="{unique_id}-matrix">
{matrix}
</g>
</g>
</svg>
"""


def command_line(target: str, kind: str, profile: str, seed: int, clauses: list[str]) -> str:
    """The ``kqv check`` command that gives the same report."""
    parts = ["kqv", "check", target, "--kind", kind, "--profile", profile]
    if seed:
        parts += ["--seed", str(seed)]
    for clause in clauses:
        parts += ["--clause", clause]
    return " ".join(parts)


def picture(report: Any, title: str) -> str:
    """The report as ``kqv check`` prints it, drawn as an SVG terminal."""
    from rich.console import Console

    from kqv.conformance.report.terminal import show

    console = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      highlight=False)
    show(report, console)
    return console.export_svg(title=title, code_format=SVG, unique_id="kqv-report")


class LiveReportDirective(SphinxDirective):
    """``kqv-live-report TARGET``: run ``kqv check`` on TARGET during the build and show its report."""

    required_arguments = 1
    option_spec = {"kind": directives.unchanged_required, "profile": directives.unchanged,
                   "seed": directives.nonnegative_int, "clauses": directives.unchanged,
                   "expect": lambda value: directives.choice(value, ("conformant", "not-conformant"))}

    def run(self) -> list[nodes.Node]:
        from kqv.conformance import check

        root = Path(self.env.srcdir).parent
        target = self.arguments[0]
        kind = self.options.get("kind", "sdpa")
        profile = self.options.get("profile", "quick")
        seed = self.options.get("seed", 0)
        clauses = (self.options.get("clauses") or "").split()
        self.env.note_dependency(str(root / target.rsplit(":", 1)[0]))
        here = os.getcwd()
        os.chdir(root)  # the report names the target as the command line run from the repository root does
        try:
            report = check(target, kind=kind, profile=profile, seed=seed, clauses=clauses or None)
        finally:
            os.chdir(here)
        expected = self.options.get("expect")
        verdict = "conformant" if report.conformant else "not-conformant"
        if expected and verdict != expected:
            logger.warning("kqv-live-report: %s was %s, the page expects %s", target, verdict, expected,
                           location=self.get_location())
        command = command_line(target, kind, profile, seed, clauses)
        block = nodes.literal_block(command, command)
        block["language"] = "bash"
        figure = nodes.raw("", picture(report, command), format="html")
        return [block, nodes.container("", figure, classes=["kqv-live-report"])]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kqv-live-report", LiveReportDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
