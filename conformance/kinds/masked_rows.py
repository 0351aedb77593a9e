"""The row whose every key is masked (clause ``mask.fully-masked-row``), for sdpa and mha.

The spec gives such a row no number (its softmax is 0/0); a backend states its convention, zeros,
nan or uniform (the mean of the values), and must follow it. Undeclared, each example's rows must
all follow one of the three, the same one in every example, and the report says which it was.
"""

from __future__ import annotations

import numpy as np

from ..registry import CheckFailure, Context
from ..compare import mismatch
from ..declaration import MASKED_ROWS, Declaration
from ..messages import masked_rows_declared, masked_rows_inconsistent, masked_rows_unknown

CLAUSE = "mask.fully-masked-row"  # the clause whose observations give the convention the report shows
OBSERVATION = "masked_rows"


def conventions_followed(result: np.ndarray, empty: np.ndarray, expectations: dict) -> list[str]:
    """The conventions whose output the rows marked ``empty`` (``(..., L)``) match."""
    rows = np.broadcast_to(empty[..., None], result.shape)
    matched = []
    for convention, judged in expectations.items():
        if mismatch(result[rows], judged.expected[rows], judged.bound[rows]) is None:
            matched.append(convention)
    return matched


def judge_masked_rows(result, empty, expectations, declaration: Declaration, context: Context, case) -> None:
    """Fail unless the empty rows follow the declared convention (or, undeclared, one of the three)."""
    if not empty.any():
        return
    matched = conventions_followed(result, empty, expectations)
    where = tuple(int(i) for i in np.argwhere(empty)[0])
    sample = np.array2string(result[where], precision=6, threshold=8)
    if declaration.masked_rows is not None:
        if declaration.masked_rows not in matched:
            raise CheckFailure(masked_rows_declared(declaration.masked_rows, matched, where, sample))
        return
    if not matched:
        raise CheckFailure(masked_rows_unknown(where, sample))
    context.observe(OBSERVATION, "/".join(matched), case)


def observed(context: Context) -> str | None:
    """The one convention every example followed (None when none was observed or they disagree)."""
    seen = [set(value.split("/")) for value, _ in context.observations.get(OBSERVATION, [])]
    if not seen:
        return None
    common = set.intersection(*seen)
    return next((c for c in MASKED_ROWS if c in common), None)


def finish(context: Context, declaration: Declaration):
    """Undeclared: the examples must agree on one convention; else ``(message, [two cases that disagree])``."""
    records = context.observations.get(OBSERVATION, [])
    if declaration.masked_rows is not None or not records or observed(context) is not None:
        return None
    first_value, first_case = records[0]
    other_value, other_case = next((v, c) for v, c in records if not set(v.split("/")) & set(first_value.split("/")))
    return masked_rows_inconsistent(first_value, other_value), [first_case, other_case]
