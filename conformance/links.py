"""Links from a clause id to its section on the documentation site.

Every report (terminal, JSON, Markdown) links each clause to ``BASE_URL + page + "#clause-" + id``.
The base URL is one setting: the environment variable ``KQV_DOCS_URL`` when it is set (for a site
built locally, ``file:///path/to/docs/_build/html/``), otherwise :data:`DEFAULT_BASE_URL`. The page
of each section is fixed by the docs (each page renders whole sections); ``tests/docs`` checks that
every link points at an anchor that the built site has.
"""

from __future__ import annotations

import os

from kqv.spec import clause

DEFAULT_BASE_URL = "https://kqv.readthedocs.io/en/latest/"

# The page that renders each section of the spec (docs/*.md), with the clauses rendered elsewhere.
PAGES = {
    "projections": "attention.html",
    "scores": "attention.html",
    "masking": "masking.html",
    "softmax": "attention.html",
    "output": "attention.html",
    "attention": "attention.html",
    "multihead": "multihead.html",
    "positional": "positional.html",
    "gradients": "gradients.html",
}
ELSEWHERE = {"softmax.jacobian": "gradients.html", "attention.accuracy": "error-model.html"}


def base_url() -> str:
    """The documentation's base URL, ending in ``/``."""
    url = os.environ.get("KQV_DOCS_URL") or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def clause_page(clause_id: str) -> str:
    """The page (``attention.html``) that renders the clause."""
    return ELSEWHERE.get(clause_id) or PAGES[clause(clause_id).section]


def clause_url(clause_id: str) -> str:
    """The link to the clause's section: ``base_url() + page + '#clause-' + id``."""
    return f"{base_url()}{clause_page(clause_id)}#clause-{clause_id}"
