"""One cell of the matrix: how a clause fared at each dtype, in a few words.

A clause with one status at every dtype reads as that status: ``pass``, ``xfail``, ``FAIL``. One whose
status differs by dtype says at which: the status of most dtypes first, bare, then each other status
with its dtypes, the worst first (``pass; xfail f64``, ``pass; FAIL f16, bf16``,
``xfail; pass f32, f16``). A result of no dtype (a check run once over all of them, as the agreement of
the fully-masked-row convention across examples) is named ``overall``.

The terminal and Markdown renderers take the cells from :mod:`.matrix`; the docs' ``kqv-report``
directive builds them from a JSON report's per-dtype results with :func:`parts` too.
"""

from __future__ import annotations

from typing import Iterable

from .data import SYMBOLS

SHORT = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}
WORST_FIRST = ("failed", "xfailed", "xpassed", "passed", "skipped")
BARE_ON_A_TIE = ("passed", "xpassed", "xfailed", "failed", "skipped")  # the status left bare when two cover as many
SEPARATOR = "; "

Part = tuple[str, str]  # (status, text): one status of a cell and the words that show it


def short(dtype: str | None) -> str:
    """``f64`` for ``float64``, ``bf16`` for ``bfloat16``; ``overall`` for a result of no dtype."""
    return "overall" if dtype is None else SHORT.get(dtype, dtype)


def parts(results: Iterable[tuple[str | None, str]]) -> list[Part]:
    """The parts of the cell of ``(dtype, status)`` results, in the order shown; ``[]`` for none (not checked)."""
    by_status: dict[str, list[str]] = {}
    for dtype, status in results:
        names = by_status.setdefault(status, [])
        if short(dtype) not in names:
            names.append(short(dtype))
    if len(by_status) <= 1:
        return [(status, _symbol(status)) for status in by_status]
    bare = max(by_status, key=lambda status: (len(by_status[status]), -_rank(BARE_ON_A_TIE, status)))
    rest = sorted((status for status in by_status if status != bare), key=lambda status: _rank(WORST_FIRST, status))
    return [(bare, _symbol(bare))] + [(status, f"{_symbol(status)} {', '.join(by_status[status])}") for status in rest]


def text(cell: list[Part]) -> str:
    """The plain words of a cell: ``pass; xfail f64``."""
    return SEPARATOR.join(words for _, words in cell)


def _rank(order: tuple[str, ...], status: str) -> int:
    return order.index(status) if status in order else len(order)


def _symbol(status: str) -> str:
    return SYMBOLS.get(status, status)
