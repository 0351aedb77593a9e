"""The Markdown pages that the docs tests read (docs/*.md and the README), and their text without fenced blocks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
FENCED_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)


def without_fenced_blocks(text: str) -> str:
    """The page with every fenced block blanked: each becomes as many newlines as it held, so line numbers stay."""
    return FENCED_BLOCK.sub(lambda block: "\n" * block.group().count("\n"), text)
