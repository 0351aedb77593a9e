"""Sphinx extension of kqv: math as MathML, converted at build time, so a page shows its formulas with no network.

It registers the HTML math renderer ``mathml`` (``html_math_renderer = "mathml"`` in conf.py, in place
of ``sphinx.ext.mathjax``, which loads MathJax from a CDN): every inline formula (MyST ``$...$``, the
``math`` role) becomes a ``<math>`` element, every display formula (``$$...$$``, ``math_block``, the
formula and derivation steps of each clause) a ``<math display="block">`` in a ``div.math``. The pages
load no script for math; any browser with MathML Core (Firefox, Chrome and Edge 109+, Safari) draws it.

The conversion is latex2mathml's (pure Python). A formula it cannot convert, or converts leaving a
command or an alignment ``&`` as text (it keeps an unknown ``\\foo`` as ``<mi>\\foo</mi>``), is a build
warning naming the formula, so an error under ``-W``; the page then shows that formula's LaTeX as code.
"""

from __future__ import annotations

import html
import re
from typing import Any

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.locale import _
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number

logger = logging.getLogger(__name__)

TEXT = re.compile(r">([^<]+)<")  # the text between two tags of the MathML
LEFT_AS_TEXT = re.compile(r"\\[A-Za-z]+|\\.|&(?!#x?[0-9A-Fa-f]+;|[A-Za-z]+;)")  # a command, or a bare & (not an entity)


class Unrendered(ValueError):
    """A formula that does not convert to MathML in full."""


def mathml(latex: str, display: bool = False) -> str:
    """The MathML of ``latex`` (``display``: a block formula); :class:`Unrendered` when it does not convert in full."""
    try:
        converted = convert(latex, display="block" if display else "inline")
    except Exception as error:  # noqa: BLE001 - latex2mathml raises many kinds on what it cannot parse
        raise Unrendered(f"latex2mathml cannot convert it ({type(error).__name__}: {error})") from None
    left = [match for text in TEXT.findall(converted) for match in LEFT_AS_TEXT.findall(text)]
    if left:
        raise Unrendered(f"latex2mathml leaves {', '.join(dict.fromkeys(left))} as text")
    return converted


def display_parts(latex: str) -> list[str]:
    """The formulas of a display block: one per paragraph (as Sphinx's MathJax renderer splits them); lines broken
    with ``\\\\`` outside an environment are aligned as one ``split``."""
    parts = [part.strip() for part in latex.split("\n\n") if part.strip()]
    return [rf"\begin{{split}}{part}\end{{split}}" if "\\\\" in part and r"\begin" not in part else part
            for part in parts]


def _converted(translator: Any, node: nodes.Element, latex: str, display: bool) -> str:
    """The MathML of one formula, or its LaTeX as code after a warning that names it."""
    try:
        return mathml(latex, display)
    except Unrendered as error:
        logger.warning("formula not rendered as MathML: %s: %s", error, latex, location=node, type="kqv",
                       subtype="math")
        return f'<code class="kqv-math-unrendered">{html.escape(latex)}</code>'


def visit_math(translator: Any, node: nodes.math) -> None:
    """An inline formula: ``<span class="math"><math>...</math></span>``."""
    translator.body.append(translator.starttag(node, "span", "", CLASS="math"))
    translator.body.append(_converted(translator, node, node.astext(), display=False) + "</span>")
    raise nodes.SkipNode


def visit_displaymath(translator: Any, node: nodes.math_block) -> None:
    """A display formula: ``<div class="math">``, its equation number if it has one, a ``<math display="block">``
    per formula of the block."""
    translator.body.append(translator.starttag(node, "div", CLASS="math"))
    if node.get("number"):
        number = get_node_equation_number(translator, node)
        translator.body.append(f'<span class="eqno">({number})')
        translator.add_permalink_ref(node, _("Link to this equation"))
        translator.body.append("</span>")
    latex = node.astext()
    parts = [latex] if node.get("no-wrap", node.get("nowrap", False)) else display_parts(latex)
    translator.body.extend(_converted(translator, node, part, display=True) for part in parts)
    translator.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
