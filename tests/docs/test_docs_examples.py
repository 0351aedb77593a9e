"""Every ```python block of docs/*.md runs, in page order, and its assertions hold.

The blocks are found by Sybil's MyST parser; one test per block, named after its page and line.
A block runs in the namespace of its page after the blocks before it on the same page, so a page
reads as one script; each block runs once (a page's evaluated blocks are remembered), unless a
test is selected alone, when the blocks before it run first. Only the top-level Markdown pages of
docs/ are collected (not _build/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

sybil = pytest.importorskip("sybil")
from sybil.parsers.myst import PythonCodeBlockParser  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(DOCS.glob("*.md"))
PARSER = sybil.Sybil(parsers=[PythonCodeBlockParser()], pattern="*.md", path=str(DOCS))


def _examples() -> list[tuple[Path, int, int]]:
    found = []
    for page in PAGES:
        for number, example in enumerate(PARSER.parse(page).examples()):
            found.append((page, number, example.line))
    return found


EXAMPLES = _examples()


def test_the_pages_with_examples_are_collected() -> None:
    pages = {page.name for page, _, _ in EXAMPLES}
    assert {"attention.md", "masking.md", "positional.md"} <= pages, pages


@pytest.mark.parametrize(("page", "number", "line"), EXAMPLES,
                         ids=[f"{page.name}:{line}" for page, _, line in EXAMPLES])
def test_python_block_runs(page: Path, number: int, line: int) -> None:
    if page not in _PAGES or _PAGES[page][1] > number:
        _PAGES[page] = (list(PARSER.parse(page).examples()), 0)
    examples, done = _PAGES[page]
    for index in range(done, number + 1):
        _PAGES[page] = (examples, index + 1)
        result = examples[index].evaluate()
        assert not result, f"{page.name}, line {examples[index].line}: {result}"


_PAGES: dict[Path, tuple[list, int]] = {}  # page -> (its examples, how many have run)
