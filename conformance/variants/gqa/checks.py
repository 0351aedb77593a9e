"""The checks of grouped-query attention (clauses ``gqa.*``), for backends that declare ``gqa``.

Each draws cases that use the variant, together with every mask, causal alignment, value profile
and scale the backend takes (and the other variants it declares, now and then): the mapping where
it matters (two or more key/value heads, each shared by two or more query heads), multi-query
attention, the identity with attention on repeated heads, and the structure of the groups.
"""

from __future__ import annotations

import numpy as np

from ...kinds.sdpa.call import against, judge
from ...kinds.sdpa.case import MASKS, VALUES
from ...kinds.sdpa.strategy import cases
from ...registry import check, needs_batch, needs_variant
from . import without_grouping

GROUPED = {"gqa": {"kv_heads": (2, 4), "group": (2, 4)}}  # where repeat-interleave and tiling differ
REQUIRES = (needs_variant("gqa"), needs_batch)


def _grouped_cases(**options):
    return cases(masks=MASKS, causal=(False, True), values=VALUES, scales=True, variants=GROUPED, **options)


@check("gqa.head-mapping", "sdpa", _grouped_cases(), requires=REQUIRES, variant="gqa")
def head_mapping(backend, case, context):
    """Query head h reads key/value head h // G (H_kv and G from 2 to 4), with every mask and alignment."""
    judge(backend, case)


@check("gqa.multi-query", "sdpa",
       cases(masks=MASKS, causal=(False, True), values=VALUES, variants={"gqa": {"kv_heads": (1, 1), "group": (2, 6)}}),
       requires=REQUIRES, variant="gqa")
def multi_query(backend, case, context):
    """With one key/value head every query head reads it (H_q from 2 to 6)."""
    judge(backend, case)


@check("gqa.repeat-interleave", "sdpa", _grouped_cases(), requires=REQUIRES, variant="gqa")
def repeat_interleave(backend, case, context):
    """The grouped call equals the backend's own call on K and V repeated in place, without enable_gqa."""
    grouped = case.build()
    group = grouped.query.shape[-3] // grouped.key.shape[-3]
    plain = without_grouping(grouped)
    against(backend, case, grouped, plain,
            f"the output with enable_gqa (H_kv = {grouped.key.shape[-3]}, G = {group}) against the output on K "
            f"and V repeated in place without it")


def _permutation(case, heads):
    """A permutation of the key/value heads that moves at least one (a rotation by 1 .. heads - 1)."""
    shift = 1 + int(np.random.default_rng([case.seed, 71]).integers(0, heads - 1))
    return np.roll(np.arange(heads), shift)


@check("gqa.group-structure", "sdpa", _grouped_cases(), requires=REQUIRES, variant="gqa")
def group_structure(backend, case, context):
    """Permuting the key/value heads with their groups of query heads permutes the output by whole groups."""
    first = case.build()
    query_heads, kv_heads = first.query.shape[-3], first.key.shape[-3]
    group = query_heads // kv_heads
    moved = _permutation(case, kv_heads)  # new key/value head g is old head moved[g]
    query_order = (moved[:, None] * group + np.arange(group)[None, :]).reshape(-1)  # (H_q,): old query head of each
    against(backend, case, first.heads_moved(query_order, moved), first,
            f"the output after moving key/value heads {moved.tolist()} with their query groups (against the output "
            f"reordered by groups)", heads=query_order)
