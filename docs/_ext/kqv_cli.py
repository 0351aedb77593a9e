"""Sphinx extension of kqv: the command-line reference, generated from the parser.

Directive ``kqv-cli`` (```` ```{kqv-cli} ```` in MyST) calls
:func:`kqv.conformance.cli.build_parser` and renders the help of the ``kqv`` command and then, for
each subcommand, a section with its one-line help and the full ``--help`` text in a literal block.
Nothing is retyped, so the page follows the parser.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from kqv.conformance.cli import build_parser

# A fixed width, so that argparse wraps the same way whatever terminal runs the build.
_WIDTH = "88"


def _help(parser: argparse.ArgumentParser) -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = _WIDTH
    try:
        return parser.format_help().rstrip()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:  # argparse keeps its subparsers here only
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((name, helps.get(name, ""), sub))
    return found


def _literal(text: str) -> nodes.literal_block:
    block = nodes.literal_block(text, text)
    block["language"] = "text"
    return block


class CliDirective(SphinxDirective):
    """``kqv-cli``: the help of ``kqv`` and of each of its subcommands."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        parser = build_parser()
        result: list[nodes.Node] = [_literal(_help(parser))]
        for name, summary, sub in _subcommands(parser):
            section_id = f"kqv-cli-{name}"
            section = nodes.section(ids=[section_id], names=[section_id])
            section += nodes.title("", "", nodes.literal(f"kqv {name}", f"kqv {name}"))
            if summary:
                section += nodes.paragraph(summary[:1].upper() + summary[1:] + ".",
                                           summary[:1].upper() + summary[1:] + ".")
            section += _literal(_help(sub))
            result.append(section)
        return result


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kqv-cli", CliDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
