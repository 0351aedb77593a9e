"""The row whose every key is masked (clause ``mask.fully-masked-row``), for sdpa and mha.

The spec gives such a row no number (its softmax is 0/0); a backend states its convention, zeros,
nan or uniform (the mean of the values), and must follow it. Undeclared, each example's rows must
all follow one of the three, the same one in every example. Whatever the declaration, every example
that draws such a row records what they returned, with the case (its mask kind and dtype), and the
report says what was seen (:func:`described`): one convention, or ``inconsistent`` and which under
which mask kind and dtype.
"""

from __future__ import annotations

import numpy as np

from ..registry import CheckFailure, Context
from ..compare import mismatch
from ..declaration import MASKED_ROWS, Declaration
from ..messages import masked_rows_declared, masked_rows_inconsistent, masked_rows_unknown

CLAUSE = "mask.fully-masked-row"  # the clause whose observations give the convention the report shows
OBSERVATION = "masked_rows"
OTHER = "other"  # recorded for rows that follow none of the conventions
OTHER_TEXT = "other values (not zeros, nan or uniform)"


def conventions_followed(result: np.ndarray, empty: np.ndarray, expectations: dict) -> list[str]:
    """The conventions whose output the rows marked ``empty`` (``(..., L)``) match."""
    rows = np.broadcast_to(empty[..., None], result.shape)
    matched = []
    for convention, judged in expectations.items():
        if mismatch(result[rows], judged.expected[rows], judged.bound[rows]) is None:
            matched.append(convention)
    return matched


def observe(result, empty, expectations, context: Context, case) -> list[str] | None:
    """Record which conventions the rows marked ``empty`` follow (:data:`OTHER` for none) and return them; None
    when the case has no such row."""
    if not empty.any():
        return None
    matched = conventions_followed(result, empty, expectations)
    context.observe(OBSERVATION, "/".join(matched) or OTHER, case)
    return matched


def judge_masked_rows(result, empty, matched: list[str] | None, declaration: Declaration) -> None:
    """Fail unless the empty rows follow the declared convention (or, undeclared, one of the three); ``matched`` is
    what :func:`observe` found they follow (None: the case has no such row)."""
    if matched is None:
        return
    where = tuple(int(i) for i in np.argwhere(empty)[0])
    sample = np.array2string(result[where], precision=6, threshold=8)
    if declaration.masked_rows is not None:
        if declaration.masked_rows not in matched:
            raise CheckFailure(masked_rows_declared(declaration.masked_rows, matched, where, sample))
        return
    if not matched:
        raise CheckFailure(masked_rows_unknown(where, sample))


def _records(context: Context, conventions_only: bool = False) -> list[tuple[str, object]]:
    records = context.observations.get(OBSERVATION, [])
    return [(value, case) for value, case in records if not conventions_only or value != OTHER]


def _common(records: list[tuple[str, object]], first: str | None = None) -> str | None:
    """The one convention (or :data:`OTHER`) every record shares, ``first`` if it is among several; None when they
    disagree or there are none."""
    if not records:
        return None
    common = set.intersection(*(set(value.split("/")) for value, _ in records))
    return next((c for c in (first, *MASKED_ROWS, OTHER) if c in common), None)


def observed(context: Context) -> str | None:
    """The one convention every example that followed one followed (None when none was observed or they disagree)."""
    return _common(_records(context, conventions_only=True))


def described(context: Context, declared: str | None = None) -> str | None:
    """What the rows that keep no key returned in this run, for the report: the one convention every example
    followed (``declared`` where the rows fit it and another), or ``inconsistent: ...`` naming each value with the
    mask kinds and dtypes it was seen under; None when no example drew such a row."""
    records = _records(context)
    one = _common(records, declared)
    if one is not None or not records:
        return one
    definite = {value for value, _ in records if "/" not in value}  # a row matching two reads as the one seen alone
    seen: dict[str, dict[str, list[str]]] = {}  # value -> mask kind -> dtypes
    for value, case in records:
        value = next((c for c in value.split("/") if c in definite), value)
        dtypes = seen.setdefault(value, {}).setdefault(getattr(case, "mask", "none"), [])
        dtype = getattr(case, "dtype", None) or "any dtype"
        if dtype not in dtypes:
            dtypes.append(dtype)
    return "inconsistent: " + "; ".join(_seen_as(value, by_mask) for value, by_mask in seen.items())


def _seen_as(value: str, by_mask: dict[str, list[str]]) -> str:
    """``zeros under bool and float masks at float64, float32``; masks seen at other dtypes are named apart."""
    masks_at: dict[tuple[str, ...], list[str]] = {}  # dtypes -> the mask kinds seen at exactly those
    for mask, dtypes in by_mask.items():
        masks_at.setdefault(tuple(dtypes), []).append(mask)
    where = " and ".join(f"{_masks(masks)} at {', '.join(dtypes)}" for dtypes, masks in masks_at.items())
    return f"{OTHER_TEXT if value == OTHER else value} under {where}"


def _masks(kinds: list[str]) -> str:
    """``bool and float masks``, ``no mask``."""
    named = [kind for kind in kinds if kind != "none"]
    words = [f"{' and '.join(named)} masks"] if named else []
    return " and ".join(words + (["no mask"] if "none" in kinds else []))


def finish(context: Context, declaration: Declaration):
    """Undeclared: the examples must agree on one convention; else ``(message, [two cases that disagree])``."""
    records = _records(context, conventions_only=True)
    if declaration.masked_rows is not None or not records or observed(context) is not None:
        return None
    first_value, first_case = records[0]
    other_value, other_case = next((v, c) for v, c in records if not set(v.split("/")) & set(first_value.split("/")))
    return masked_rows_inconsistent(first_value, other_value), [first_case, other_case]
