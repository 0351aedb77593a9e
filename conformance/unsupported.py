"""What a call asked of a backend, feature by feature, and the declaration that marks each one unsupported.

A backend that raises ``NotImplementedError`` on a feature it does not declare still fails the
clause (an undeclared feature is owed); the failure then names what the call asked for and the
declaration that would have the checks leave it out: ``--no-non-causal`` for a call without
``is_causal``, ``--no-cross-lengths`` for ``L != S``, ``--no-odd-d-model`` for an odd width, and so
on. Each kind lists the features of its calls (``features`` in ``kinds/<kind>/call.py``) from the
pieces here; the dtype and the number of batch dims, which every call has, are left out (``--dtypes``
and ``--batch-dims`` say which a backend takes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .messages import declare_unsupported
from .options import OPTIONS


@dataclass(frozen=True)
class Feature:
    """One thing a call asks for (``what``), and the declaration ``field = value`` that says it is not supported."""

    what: str
    field: str
    value: Any = False

    def declaration(self) -> tuple[str, str]:
        """``("--no-non-causal", "Declaration(non_causal=False)")``."""
        return " ".join(OPTIONS[self.field].words(self.value)), f"Declaration({self.field}={self.value!r})"


def mask_features(is_causal: bool, attn_mask: np.ndarray | None) -> list[Feature]:
    """The mask of a call: its kind, with is_causal, and whether it differs per batch entry (a batch dim above 1)."""
    if attn_mask is None:
        return []
    kind = "bool" if attn_mask.dtype == np.bool_ else "float"
    found = [Feature(f"a {kind} attn_mask", f"{kind}_mask")]
    if is_causal:
        found.append(Feature("an attn_mask with is_causal=True", "mask_with_causal"))
    if any(n > 1 for n in attn_mask.shape[:-2]):
        found.append(Feature("an attn_mask that differs per batch entry", "mask_batch"))
    return found


def causal_feature(is_causal: bool) -> list[Feature]:
    """The causal flag: a causal call, or one without ``is_causal`` (which a causal-only backend rejects)."""
    return [Feature("is_causal=True", "causal") if is_causal else Feature("is_causal=False", "non_causal")]


def layout_features(layout: str, L: int, S: int) -> list[Feature]:
    """The memory layout of a call's inputs and its lengths."""
    found = [Feature(f"{layout} (non-contiguous) inputs", "strided")] if layout != "contiguous" else []
    if L != S:
        found.append(Feature(f"L != S (L = {L}, S = {S})", "cross_lengths"))
    return found


def hint(error: BaseException, features: list[Feature]) -> str:
    """For a backend that raised ``NotImplementedError`` (``error`` or its cause), the declarations that would mark
    the call's ``features`` unsupported; otherwise, or with no feature to name, ``""``."""
    raised = error if isinstance(error, NotImplementedError) else error.__cause__
    if not isinstance(raised, NotImplementedError) or not features:
        return ""
    return declare_unsupported([f.what for f in features], [f.declaration() for f in features])
