"""Cases: a few named parameters and a seed that determine the arrays of one call.

Hypothesis draws and shrinks the parameters (``kqv.conformance.strategies``); the arrays are
made from them by NumPy, so a counterexample is small to print, exact to replay
(``Case.to_json`` / ``case_from_json``) and cheap to build at any size. Arrays come out already
rounded to the dtype under test.

Value profiles (``values``), each a way attention is known to break:

- ``normal``: standard normal entries;
- ``large``: scores scaled to reach past where a naive ``exp`` overflows in the dtype
  (``log(max)``: 709 in float64, 88 in float32, 11 in float16), up to 4 times that;
- ``huge``: scores of 1e3 to 1e6 (at most ``sqrt(max)/4``);
- ``far-apart``: each query row's scores sit around its own offset, rows up to ``4 log(max)`` apart;
- ``ties``: small integer entries, so many scores tie exactly;
- ``identical-keys``: every key row equal, so the weights are uniform;
- ``zeros``: a zero query, so every score is 0;
- ``large-values`` / ``tiny-values``: values of magnitude 1e2 to 1e4 / 1e-6 to 1e-3.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .dtypes import LARGEST, round_to

VALUES = ("normal", "large", "huge", "far-apart", "ties", "identical-keys", "zeros", "large-values", "tiny-values")
MASKS = ("none", "bool", "float")
MASK_SHAPES = ("full", "shared", "broadcast")


def _rng(seed: int, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, salt])


@dataclass(frozen=True)
class Case:
    """Base of the three kinds of case: JSON round trip and a one-line description."""

    kind: ClassVar[str] = ""

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, **dataclasses.asdict(self)}, sort_keys=True)

    def describe(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))


def case_from_json(text: str) -> "Case":
    """The case written by :meth:`Case.to_json`; a ValueError naming what is wrong otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"case: not valid JSON ({error})") from None
    if not isinstance(data, dict) or data.get("kind") not in CASE_TYPES:
        raise ValueError(f"case: expected a JSON object with \"kind\" one of {', '.join(CASE_TYPES)}")
    cls = CASE_TYPES[data.pop("kind")]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"case: unknown field(s) {', '.join(unknown)} for a {cls.kind} case")
    for name, value in data.items():
        if isinstance(value, list):
            data[name] = tuple(value)
    return cls(**data)


# ----------------------------------------------------------------------------- sdpa


@dataclass(frozen=True)
class SdpaInputs:
    """The arrays of one ``sdpa`` call, in the dtype under test (the mask bool or in that dtype)."""

    query: np.ndarray  # (..., L, E)
    key: np.ndarray  # (..., S, E)
    value: np.ndarray  # (..., S, Ev)
    attn_mask: np.ndarray | None = None  # broadcastable to (..., L, S)
    is_causal: bool = False
    scale: float | None = None
    keywords: tuple[tuple[str, Any], ...] = ()  # the variants' keywords, for the call and the reference

    def replace(self, **changes: Any) -> "SdpaInputs":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class SdpaCase(Case):
    """One ``sdpa`` call: dtype, shapes, value profile, mask, causal flag, scale and seed."""

    kind: ClassVar[str] = "sdpa"

    dtype: str = "float64"
    batch: tuple[int, ...] = ()
    L: int = 1
    S: int = 1
    E: int = 1
    Ev: int = 1
    values: str = "normal"
    mask: str = "none"
    mask_shape: str = "full"
    empty_rows: bool = False  # some query rows keep no key at all
    is_causal: bool = False
    alignment: str = "top-left"  # of is_causal, to keep one key per row where rows must keep one
    scale: float | None = None
    seed: int = 0

    @property
    def default_scale(self) -> float:
        return self.scale if self.scale is not None else 1.0 / math.sqrt(self.E)

    def build(self) -> SdpaInputs:
        rng = _rng(self.seed)
        query, key, value = _sdpa_values(self, rng)
        mask = _sdpa_mask(self, _rng(self.seed, 1))
        return SdpaInputs(round_to(query, self.dtype), round_to(key, self.dtype), round_to(value, self.dtype),
                          mask, self.is_causal, self.scale)


def _sdpa_values(case: SdpaCase, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batch, (L, S, E, Ev) = case.batch, (case.L, case.S, case.E, case.Ev)
    query = rng.standard_normal(batch + (L, E))
    key = rng.standard_normal(batch + (S, E))
    value = rng.standard_normal(batch + (S, Ev))
    s = case.default_scale
    overflow = math.log(LARGEST[case.dtype])  # where exp overflows in the dtype
    if case.values in ("large", "huge"):
        target = overflow * 10 ** rng.uniform(-0.3, 0.6) if case.values == "large" else \
            min(10 ** rng.uniform(3, 6), math.sqrt(LARGEST[case.dtype]) / 4)
        reached = np.max(np.abs(s * query @ np.swapaxes(key, -1, -2)), initial=0.0)
        if reached > 0:
            query = query * (target / reached)
    elif case.values == "far-apart" and E:
        key[..., 0] = 1.0
        sign = rng.choice([-1.0, 1.0], size=batch + (L,))
        query[..., 0] = sign * 10 ** rng.uniform(0, math.log10(4 * overflow), size=batch + (L,)) / s
    elif case.values == "ties":
        query = rng.integers(-2, 3, size=query.shape).astype(np.float64)
        key = rng.integers(-2, 3, size=key.shape).astype(np.float64)
    elif case.values == "identical-keys":
        key = np.broadcast_to(key[..., :1, :], key.shape).copy()
    elif case.values == "zeros":
        query = np.zeros_like(query)
    elif case.values == "large-values":
        value = value * 10 ** rng.uniform(2, 4)
    elif case.values == "tiny-values":
        value = value * 10 ** rng.uniform(-6, -3)
    return query, key, value


def _mask_shape(case: SdpaCase, rng: np.random.Generator) -> tuple[int, ...]:
    if case.mask_shape == "shared":
        return (case.L, case.S)
    if case.mask_shape == "broadcast":
        return tuple(n if rng.random() < 0.5 else 1 for n in case.batch) + (case.L, case.S)
    return case.batch + (case.L, case.S)


def _sdpa_mask(case: SdpaCase, rng: np.random.Generator) -> np.ndarray | None:
    """The attn_mask of the case: every row keeps a key unless ``empty_rows``, then some keep none."""
    if case.mask == "none":
        return None
    shape = _mask_shape(case, rng)
    density = rng.uniform(0.2, 0.9)
    keep = rng.random(shape) < density
    if case.S:
        # One key per row stays kept; under is_causal it is key 0, which every causal row sees.
        chosen = np.zeros(shape[:-1], dtype=np.int64) if case.is_causal else rng.integers(0, case.S, shape[:-1])
        np.put_along_axis(keep, chosen[..., None], True, axis=-1)
    if case.empty_rows and case.L:
        rows = rng.random(shape[:-1]) < 0.4
        rows.flat[rng.integers(0, rows.size)] = True
        keep &= ~rows[..., None]
    if case.mask == "bool":
        return keep
    sigma = rng.choice([0.5, 3.0, 30.0])
    bias = rng.normal(0.0, sigma, shape)
    return round_to(np.where(keep, bias, -np.inf), case.dtype)


# ----------------------------------------------------------------------------- mha

# Weight profiles: normal; identical-heads (every head's columns of w_q, w_k, w_v equal, so
# the head order cannot matter); shared-output (every head's row block of w_o equal, so the
# concatenation order cannot matter); large (scores in the tens).
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


# ----------------------------------------------------------------------------- pe


@dataclass(frozen=True)
class PeCase(Case):
    """One ``pe`` call: ``fn(length, d_model)``."""

    kind: ClassVar[str] = "pe"

    length: int = 1
    d_model: int = 1


CASE_TYPES: dict[str, type[Case]] = {"sdpa": SdpaCase, "mha": MhaCase, "pe": PeCase}
