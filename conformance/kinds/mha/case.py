"""The ``mha`` case: one multi-head attention call in the seed's notation, rebuilt from a few parameters.

Weight profiles (``weights``): ``normal``; ``identical-heads`` (every head's columns of w_q, w_k,
w_v equal, so the head order cannot matter); ``shared-output`` (every head's row block of w_o
equal, so the concatenation order cannot matter); ``large`` (scores in the tens).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...dtypes import round_to
from ..base import Case, rng as _rng

WEIGHTS = ("normal", "identical-heads", "shared-output", "large")


@dataclass(frozen=True)
class MhaInputs:
    """The arrays of one ``mha`` call, in the dtype under test."""

    x_q: np.ndarray  # (B, L, d_model)
    x_kv: np.ndarray  # (B, S, d_model)
    w_q: np.ndarray  # (d_model, h*d_k)
    w_k: np.ndarray  # (d_model, h*d_k)
    w_v: np.ndarray  # (d_model, h*d_v)
    w_o: np.ndarray  # (h*d_v, d_model)
    b_q: np.ndarray | None = None
    b_k: np.ndarray | None = None
    b_v: np.ndarray | None = None
    b_o: np.ndarray | None = None
    num_heads: int = 1
    attn_mask: np.ndarray | None = None  # (B or 1, L, S)
    is_causal: bool = False

    def replace(self, **changes: Any) -> "MhaInputs":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class MhaCase(Case):
    """One ``mha`` call."""

    kind: ClassVar[str] = "mha"

    dtype: str = "float64"
    B: int = 1
    L: int = 1
    S: int = 1
    d_model: int = 1
    num_heads: int = 1
    d_k: int = 1
    d_v: int = 1
    biases: tuple[str, ...] = ()  # which of "q", "k", "v", "o" are given
    weights: str = "normal"
    self_attention: bool = False  # x_kv is x_q (then L = S)
    mask: str = "none"
    mask_batch: bool = True  # the mask has a batch dim B, else 1
    empty_rows: bool = False
    is_causal: bool = False
    seed: int = 0

    def build(self) -> MhaInputs:
        rng = _rng(self.seed)
        h, d_model = self.num_heads, self.d_model
        x_q = rng.standard_normal((self.B, self.L, d_model))
        x_kv = x_q if self.self_attention else rng.standard_normal((self.B, self.S, d_model))
        spread = 1.0 / math.sqrt(d_model)
        if self.weights == "large":
            spread *= 4.0
        w_q, w_k = (rng.standard_normal((d_model, h * self.d_k)) * spread for _ in range(2))
        w_v = rng.standard_normal((d_model, h * self.d_v)) * spread
        w_o = rng.standard_normal((h * self.d_v, d_model)) / math.sqrt(h * self.d_v)
        if self.weights == "identical-heads":
            w_q, w_k = (np.tile(w[:, :self.d_k], (1, h)) for w in (w_q, w_k))
            w_v = np.tile(w_v[:, :self.d_v], (1, h))
        elif self.weights == "shared-output":
            w_o = np.tile(w_o[:self.d_v], (h, 1))
        widths = {"q": h * self.d_k, "k": h * self.d_k, "v": h * self.d_v, "o": d_model}
        biases = {f"b_{name}": round_to(rng.standard_normal(widths[name]), self.dtype) if name in self.biases else None
                  for name in ("q", "k", "v", "o")}
        mask = _mha_mask(self, _rng(self.seed, 1))
        arrays = {name: round_to(a, self.dtype) for name, a in
                  (("x_q", x_q), ("w_q", w_q), ("w_k", w_k), ("w_v", w_v), ("w_o", w_o))}
        arrays["x_kv"] = arrays["x_q"] if self.self_attention else round_to(x_kv, self.dtype)
        return MhaInputs(**arrays, **biases, num_heads=h, attn_mask=mask, is_causal=self.is_causal)


def _mha_mask(case: MhaCase, rng: np.random.Generator) -> np.ndarray | None:
    if case.mask == "none":
        return None
    shape = ((case.B if case.mask_batch else 1), case.L, case.S)
    keep = rng.random(shape) < rng.uniform(0.2, 0.9)
    keep[..., 0] = True  # key 0: seen by every query, causal or not
    if case.empty_rows:
        rows = rng.random(shape[:-1]) < 0.4
        rows.flat[rng.integers(0, rows.size)] = True
        keep &= ~rows[..., None]
    if case.mask == "bool":
        return keep
    return round_to(np.where(keep, rng.normal(0.0, 2.0, shape), -np.inf), case.dtype)
