"""Links from a clause id to its section on the documentation site.

Every report (terminal, JSON, Markdown) links each clause to ``BASE_URL + page + "#clause-" + id``.
The base URL is one setting: the environment variable ``KQV_DOCS_URL`` when it is set (for a site
built locally, ``file:///path/to/docs/_build/html/``), otherwise :data:`DEFAULT_BASE_URL`. The page
is the clause's own :attr:`kqv.spec.Clause.page`; the docs build refuses a clause rendered on another
page, and ``tests/docs`` checks that every link points at an anchor that the built site has.
"""

from __future__ import annotations

import os

from kqv.spec import clause

DEFAULT_BASE_URL = "https://kqv.readthedocs.io/en/latest/"

def base_url() -> str:
    """The documentation's base URL, ending in ``/``."""
    url = os.environ.get("KQV_DOCS_URL") or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def clause_page(clause_id: str) -> str:
    """The page (``attention.html``) that renders the clause: its :attr:`kqv.spec.Clause.page`."""
    return f"{clause(clause_id).page}.html"


def clause_url(clause_id: str) -> str:
    """The link to the clause's section: ``base_url() + page + '#clause-' + id``."""
    return f"{base_url()}{clause_page(clause_id)}#clause-{clause_id}"
