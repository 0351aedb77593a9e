"""A variant of the ``sdpa`` contract: an extra keyword of the same call, off unless a backend declares it.

Each variant is declared in one place, its package under ``kqv.conformance.variants``: the clause
ids it adds, the declaration field that turns it on (a bool, False by default, so a backend that
does not declare it has every check of the variant skipped, never failed; the command line gets
``--<name>`` from it), what the strategy draws for it, how it changes the arrays of a case, the
keyword it adds to the call and to the reference, and the module of its checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Variant:
    """One declared variant.

    ``draw(draw, case, declaration, profile, **options)`` returns the sdpa case made to use the
    variant (its parameter recorded in ``case.variants``), or the case unchanged when the
    declaration leaves no room for it; ``build(parameter, arrays)`` changes the case's arrays
    (``query``, ``key``, ``value``; unchanged by default); ``keywords(parameter)`` gives the keywords it adds to the call
    and to :func:`kqv.reference.scaled_dot_product_attention`; ``shapes(parameter, shapes)`` the
    shapes of the arguments as the contract's shape rule sees them (by name; identity by default);
    ``fits(batch, **options)`` whether a case of those batch dims can use it without changing them
    (a backend with a budget of shapes draws the batch dims from its pool first); ``keeps(parameter,
    case)`` the keys it keeps, ``(L, S)`` bool, for a variant that drops keys (None: it drops none),
    so that the masks a case draws keep a key in every row; ``positional`` whether its rule reads the
    positions of queries and keys (checks that permute them leave it out); ``heads(parameter, order)``
    the parameter once query head ``h`` is the old head ``order[h]`` (a parameter per head moves with it);
    ``biased`` whether it adds a bias to the scores (checks whose property holds without biases leave it out);
    ``partial_rows`` whether the weights of a row sum to less than 1 under it, a row without a key giving 0
    (attention sinks: checks whose property needs rows that sum to 1, or the fully-masked-row convention,
    leave it out);
    ``result`` the name of a further result the call returns with it, ``(output, result)`` (the lse), for a variant
    that changes what the call returns, not what it computes: its keywords go to the backend's call only.
    """

    name: str
    help: str
    clauses: tuple[str, ...]
    draw: Callable[..., Any]
    keywords: Callable[[Any], dict[str, Any]]
    checks: str  # the module that registers its checks
    build: Callable[[Any, dict[str, Any]], dict[str, Any]] = lambda parameter, arrays: arrays  # arrays as drawn
    shapes: Callable[[Any, dict[str, tuple[int, ...]]], dict[str, tuple[int, ...]]] = lambda parameter, shapes: shapes
    fits: Callable[..., bool] = lambda batch, **options: True
    keeps: Callable[[Any, Any], Any] | None = None
    positional: bool = False  # its rule depends on the positions i and j (a window), not only on their scores
    heads: Callable[[Any, Any], Any] = lambda parameter, order: parameter  # after query head h <- old head order[h]
    biased: bool = False  # it adds a bias to the scores (ALiBi): checks of unbiased scores leave it out
    partial_rows: bool = False  # a row's weights sum to less than 1 (sinks): checks of whole rows leave it out
    result: str | None = None  # the further result it asks the call for (return_lse=True: "lse")
