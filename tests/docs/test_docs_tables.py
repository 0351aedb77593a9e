"""Every Markdown table of the docs and the README has as many cells in each row as in its header.

A row with a cell too many or too few renders as a shifted or a truncated table (GitHub and MyST
both drop or pad silently), so a figure lands under the wrong column without any warning.
Cells are split on ``|`` outside code spans and not escaped as ``\\|``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_pages import PAGES, ROOT, without_fenced_blocks

CODE_SPAN = re.compile(r"`[^`]*`")


def cells(row: str) -> int:
    """The number of cells of a table row ``| a | b |``."""
    plain = CODE_SPAN.sub("code", row.replace(r"\|", "pipe")).strip()
    return len(plain.strip("|").split("|"))


def tables(text: str) -> list[tuple[int, list[str]]]:
    """Each table of a page, as (line of its header, its lines); fenced blocks are not tables."""
    text = without_fenced_blocks(text)
    found: list[tuple[int, list[str]]] = []
    current: list[str] = []
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if line.startswith("|"):
            current.append(line)
            continue
        if len(current) >= 2 and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", current[1].strip()):
            found.append((number - len(current), current))
        current = []
    return found


def misshapen_rows(text: str) -> list[str]:
    """The rows whose cell count differs from their table's header, as 'line N: k cells, header has h'."""
    wrong = []
    for first, lines in tables(text):
        header = cells(lines[0])
        wrong += [f"line {first + offset}: {cells(line)} cells, header has {header}"
                  for offset, line in enumerate(lines) if cells(line) != header]
    return wrong


def test_the_pages_have_tables() -> None:
    assert tables((ROOT / "README.md").read_text()), "the README's tables were not found: the parser is broken"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_row_has_as_many_cells_as_its_header(page: Path) -> None:
    assert misshapen_rows(page.read_text()) == []


def test_a_row_with_a_cell_too_many_is_caught() -> None:
    page = "text\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 | 5 |\n\n| c |\n|---|\n| `x | y` |\n"
    assert misshapen_rows(page) == ["line 6: 3 cells, header has 2"]
