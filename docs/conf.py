"""Sphinx configuration of the kqv documentation.

Build: python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

project = "kqv"
author = "the kqv authors"
copyright = "the kqv authors"  # noqa: A001 - Sphinx's name
release = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.mathjax",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "matplotlib.sphinxext.plot_directive",
    "kqv_clauses",
    "kqv_cli",
    "kqv_conformance",
    "kqv_live_report",
]

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
root_doc = "index"

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "kqv"
html_static_path = ["_static"]
html_css_files = ["kqv.css"]

# Every clause of kqv.spec must be rendered on exactly one page.
kqv_clauses_require_all = True

# autodoc: signatures keep their annotations, descriptions come from napoleon-style docstrings.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# Nitpicky mode: third-party types only (no intersphinx, the build runs offline).
nitpick_ignore = [
    ("py:class", "sympy.Basic"),
    ("py:class", "sympy.core.basic.Basic"),
    ("py:class", "numpy.ndarray"),
    ("py:class", "np.ndarray"),
    ("py:class", "numpy.typing.ArrayLike"),
    ("py:class", "Any"),
    ("py:class", "Callable"),
    ("py:class", "collections.abc.Callable"),
    ("py:func", "sympy.latex"),
    ("py:func", "mpmath.fdot"),
    ("py:func", "mpmath.fsum"),
    ("py:func", "mpmath.workdps"),
    ("py:class", "mpmath.mpf"),
    ("py:class", "numpy.random._generator.Generator"),
    ("py:class", "argparse.Namespace"),
    ("py:class", "pathlib.Path"),
    ("py:class", "collections.Counter"),
    ("py:class", "warnings.WarningMessage"),
    ("py:class", "multiprocessing.connection.Connection"),
    ("py:class", "hypothesis.strategies.SearchStrategy"),
]

# matplotlib plot directive: small PNGs, no source links or extra formats.
plot_formats = [("png", 90)]
plot_html_show_source_link = False
plot_html_show_formats = False
plot_include_source = False
plot_rcparams = {"figure.figsize": (6.0, 3.0), "font.size": 9}


def _dataclass_factory_defaults(app, what, name, obj, options, signature, return_annotation):
    """Show a dataclass ``field(default_factory=...)`` default as ``...``.

    inspect renders it as ``<factory>``, which is not Python, so the Python domain cannot parse
    the signature and splits annotations such as ``dict[str, str]`` at their comma.
    """
    if signature and "<factory>" in signature:
        signature = signature.replace("<factory>", "...")
    return signature, return_annotation


def setup(app):
    app.connect("autodoc-process-signature", _dataclass_factory_defaults)
