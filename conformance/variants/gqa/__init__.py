"""Grouped-query and multi-query attention as a variant of the ``sdpa`` contract (clauses ``gqa.*``).

Declared by ``gqa=True`` (``kqv check --gqa``), it adds the keyword ``enable_gqa=True`` to the
call and to the reference: query ``(..., H_q, L, E)``, key and value ``(..., H_kv, S, .)`` with
``H_q = G H_kv``, query head ``h`` reading key/value head ``h // G``. A case records ``H_kv``; its
last batch dim is ``H_q``. The checks are in ``kqv.conformance.variants.gqa.checks``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ...strategies import choice, integers
from ..base import Variant

KV_HEADS = (1, 4)  # the key/value heads drawn, at least and at most
GROUP = (1, 4)  # the query heads per key/value head drawn


def draw(draw_from, case, declaration, profile, *, kv_heads: tuple[int, int] = KV_HEADS,
         group: tuple[int, int] = GROUP):
    """``H_kv`` and ``G`` within their ranges: the last batch dim of the case becomes ``H_q = G H_kv``.

    A case without batch dims gets the fewest the backend accepts; one that accepts none cannot
    use the variant and comes back unchanged. Under a budget of shapes (``profile.shapes``) the
    query's heads stay as the pool drew them and ``H_kv`` is one of their :func:`groupings`.
    """
    batch = case.batch
    if profile.shapes:  # a budget of shapes: the query keeps its heads, H_kv divides them
        choices = groupings(batch, kv_heads, group)
        if not choices:
            return case
        return dataclasses.replace(case, variants=case.variants + (("gqa", draw_from(choice(tuple(choices)))),))
    if not batch:
        counts = [n for n in declaration.batch_dims if n >= 1]
        if not counts:
            return case
        batch = (1,) * min(counts)
    heads = draw_from(integers(*kv_heads))
    size = draw_from(integers(*group))
    return dataclasses.replace(case, batch=batch[:-1] + (heads * size,), variants=case.variants + (("gqa", heads),))


def groupings(batch: tuple[int, ...], kv_heads: tuple[int, int] = KV_HEADS, group: tuple[int, int] = GROUP) -> list[int]:
    """The ``H_kv`` within ``kv_heads`` that divide the query's ``H_q = batch[-1]`` into groups within ``group``."""
    if not batch:
        return []
    query_heads = batch[-1]
    return [heads for heads in range(kv_heads[0], kv_heads[1] + 1)
            if query_heads % heads == 0 and group[0] <= query_heads // heads <= group[1]]


def build(kv_heads: int, arrays: dict[str, Any]) -> dict[str, Any]:
    """Key and value keep their first ``H_kv`` heads: ``(..., H_kv, S, .)``."""
    return {**arrays, **{name: np.ascontiguousarray(arrays[name][..., :kv_heads, :, :]) for name in ("key", "value")}}


def shapes(kv_heads: int, named: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Key and value count the query's heads once mapped: the output is ``(..., H_q, L, Ev)``."""
    query_heads = named["query"][-3:-2]
    return {name: shape if name == "query" else shape[:-3] + query_heads + shape[-2:] for name, shape in named.items()}


def without_grouping(inputs):
    """The call without the variant, on key and value repeated in place to the query's heads, ``(..., H_q, S, .)``."""
    group = inputs.query.shape[-3] // inputs.key.shape[-3]
    return inputs.without("gqa").replace(key=np.repeat(inputs.key, group, axis=-3),
                                         value=np.repeat(inputs.value, group, axis=-3))


VARIANT = Variant(
    name="gqa",
    help="accepts enable_gqa=True: key and value with H_kv heads, H_q a multiple of H_kv (grouped-query and "
         "multi-query attention)",
    clauses=("gqa.head-mapping", "gqa.multi-query", "gqa.repeat-interleave", "gqa.group-structure"),
    draw=draw,
    build=build,
    keywords=lambda kv_heads: {"enable_gqa": True},
    checks="kqv.conformance.variants.gqa.checks",
    shapes=shapes,
    fits=lambda batch, **options: bool(groupings(batch, **options)),
)
