"""What a backend declares: the contract it follows, the features it supports, its conventions.

A feature a backend does not support is skipped and reported as skipped, never failed. Each
variant of the sdpa contract (``kqv.conformance.variants``) adds a bool field of its name, False
by default, from its own declaration (``gqa``). Where the
world disagrees (DESIGN.md, "Conventions the world disagrees on") the backend states its own
convention and is judged under it: ``masked_rows`` (what a row whose every key is masked returns)
and ``causal_alignment``. An undeclared ``masked_rows`` is observed and reported; an undeclared
``causal_alignment`` means top-left. ``backward`` says that the backend can be differentiated: the gradient
checks (``kqv.conformance.gradients``) then run on the same cases, masks, dtypes and variants.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .dtypes import DTYPES, check_dtype_name
from .variants import VARIANTS

KINDS = ("sdpa", "mha", "pe")
MASKED_ROWS = ("zeros", "nan", "uniform")
CAUSAL_ALIGNMENTS = ("top-left", "bottom-right")
ACCUMULATIONS = ("float32", "dtype")
BATCH_DIMS = (0, 1, 2)
MIN_SHAPES = 4  # a budget of shapes holds two small ones and two at tile boundaries (kinds/sdpa/shapes.py)


@dataclass(frozen=True)
class ExpectedFailure:
    """A known departure from a clause, reported as an expected failure with its reason, never as a pass.

    ``dtypes`` limits it to those dtypes (empty: every dtype).
    """

    clause: str
    reason: str
    dtypes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from kqv.spec import clause as lookup

        lookup(self.clause)  # a KeyError naming the id and the closest ones
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ValueError(f"ExpectedFailure({self.clause!r}): reason must be a non-empty string")
        object.__setattr__(self, "dtypes", tuple(check_dtype_name(d, "ExpectedFailure.dtypes") for d in self.dtypes))

    def applies(self, clause: str, dtype: str) -> bool:
        return clause == self.clause and (not self.dtypes or dtype in self.dtypes)


def _option(help_text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": help_text}, **kwargs)


def _with_variant_fields(cls: type) -> type:
    """Add a bool field, False by default, for each variant of :data:`~kqv.conformance.variants.VARIANTS`."""
    for variant in VARIANTS.values():
        cls.__annotations__[variant.name] = "bool"
        setattr(cls, variant.name, _option(f"sdpa: {variant.help}", default=False))
    return cls


@dataclass(frozen=True)
@_with_variant_fields
class Declaration:
    """The declaration of a backend of kind ``sdpa``, ``mha`` or ``pe`` (DESIGN.md, "Contracts")."""

    kind: str = _option("the contract: sdpa, mha or pe", default="sdpa")
    dtypes: tuple[str, ...] = _option("dtypes it accepts and returns", default=("float64", "float32"))
    device: str = _option("device its arrays live on (cpu, cuda)", default="cpu")
    bool_mask: bool = _option("accepts a bool attn_mask (True = the key takes part)", default=True)
    float_mask: bool = _option("accepts a floating attn_mask added to the scores (-inf allowed)", default=True)
    causal: bool = _option("accepts is_causal=True", default=True)
    non_causal: bool = _option("accepts is_causal=False (False: a causal-only backend; every case is drawn with "
                               "is_causal=True, and the checks that need calls without it are skipped)", default=True)
    mask_with_causal: bool = _option("accepts attn_mask together with is_causal=True", default=True)
    scale: bool = _option("accepts an explicit scale (sdpa)", default=True)
    cross_lengths: bool = _option("accepts L != S (queries and keys of different lengths; False: every case has L = S)",
                                  default=True)
    value_width: bool = _option("accepts a value width Ev != E (sdpa) or d_v != d_k (mha)", default=True)
    batch_dims: tuple[int, ...] = _option("numbers of leading batch dims it accepts (sdpa: 0, 1, 2)",
                                          default=BATCH_DIMS)
    mask_batch: bool = _option("accepts masks with batch dims that differ per batch entry", default=True)
    strided: bool = _option("accepts non-contiguous (strided, offset, expanded) inputs", default=True)
    deterministic: bool = _option("gives bitwise identical outputs for identical calls (and, with backward, "
                                  "gradients for identical backward passes)", default=True)
    backward: bool = _option("sdpa, mha: can be differentiated: kqv draws dO and checks dQ, dK, dV (clauses "
                             "gradient.*; mha: the gradients of every input, clauses mha.gradient.*) through torch "
                             "autograd, jax.vjp or the backend's backward callable", default=False)
    masked_rows: str | None = _option("what a row whose every key is masked returns: zeros, nan, uniform "
                                      "(undeclared: observed and reported)", default=None)
    causal_alignment: str | None = _option("is_causal alignment when L != S: top-left, bottom-right "
                                           "(undeclared: top-left)", default=None)
    accumulation: str = _option("precision of the sums (dot products, softmax sums) for float16/bfloat16: float32 "
                                "(at least float32) or dtype (the storage dtype itself)", default="float32")
    shapes: int = _option("sdpa: at most this many shapes of query, key and value per dtype in a run, for kernels "
                          "that compile once per shape (XLA, torch.compile, Triton); values, masks and options still "
                          f"vary (0: no budget; else at least {MIN_SHAPES})", default=0)
    heads_split_model: bool = _option("mha: needs num_heads * d_k = num_heads * d_v = d_model, as "
                                      "torch.nn.MultiheadAttention does", default=False)
    biases: bool = _option("mha: accepts the biases b_q, b_k, b_v, b_o", default=True)
    cross_attention: bool = _option("mha: accepts x_kv other than x_q (False: self-attention only; x_kv is x_q, so "
                                    "L = S, in every case)", default=True)
    odd_d_model: bool = _option("pe: accepts an odd d_model (False: every d_model drawn is even)", default=True)
    conventions: tuple[tuple[str, str], ...] = _option("other conventions the adapter maps (mask polarity, "
                                                       "layout), reported as they are", default=())
    expected_failures: tuple[ExpectedFailure, ...] = _option("known departures: reported as expected failures",
                                                             default=())

    def __post_init__(self) -> None:
        _choice("kind", self.kind, KINDS)
        dtypes = self.dtypes
        if isinstance(dtypes, str):
            dtypes = tuple(part.strip() for part in dtypes.split(",") if part.strip())
        dtypes = tuple(dtypes)
        if not dtypes:
            raise ValueError("dtypes: expected at least one of " + ", ".join(DTYPES))
        object.__setattr__(self, "dtypes", tuple(dict.fromkeys(check_dtype_name(d, "dtypes") for d in dtypes)))
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device: expected a device name such as 'cpu' or 'cuda', got {self.device!r}")
        for item in dataclasses.fields(self):
            if item.type == "bool" and not isinstance(getattr(self, item.name), bool):
                raise TypeError(f"{item.name}: expected True or False, got {getattr(self, item.name)!r}")
        if not self.causal and not self.non_causal:
            raise ValueError("causal, non_causal: a backend takes is_causal=True or is_causal=False; both are False")
        if not self.non_causal and not self.mask_with_causal and (self.bool_mask or self.float_mask):
            raise ValueError("non_causal=False with mask_with_causal=False: every call is causal and none may take an "
                             "attn_mask; declare bool_mask=False and float_mask=False too, or mask_with_causal=True")
        batch_dims = tuple(self.batch_dims)
        if not batch_dims or any(n not in BATCH_DIMS for n in batch_dims):
            raise ValueError(f"batch_dims: expected a non-empty subset of {BATCH_DIMS}, got {self.batch_dims!r}")
        object.__setattr__(self, "batch_dims", tuple(sorted(set(batch_dims))))
        if self.masked_rows is not None:
            _choice("masked_rows", self.masked_rows, MASKED_ROWS)
        if self.causal_alignment is not None:
            _choice("causal_alignment", self.causal_alignment, CAUSAL_ALIGNMENTS)
        _choice("accumulation", self.accumulation, ACCUMULATIONS)
        if isinstance(self.shapes, bool) or not isinstance(self.shapes, int) or 0 < self.shapes < MIN_SHAPES \
                or self.shapes < 0:
            raise ValueError(f"shapes: expected 0 (no budget) or an integer >= {MIN_SHAPES}, got {self.shapes!r}")
        if self.backward and self.kind not in ("sdpa", "mha"):
            raise ValueError(f"backward: the gradients are checked for kinds sdpa and mha, not {self.kind}; leave "
                             f"backward=False")
        if self.shapes and self.kind != "sdpa":
            raise ValueError(f"shapes: a budget of shapes applies to kind sdpa (its cases draw their sizes from it), "
                             f"not {self.kind}, whose strategy draws sizes freely; leave shapes=0")
        conventions = dict(self.conventions) if not isinstance(self.conventions, dict) else self.conventions
        object.__setattr__(self, "conventions", tuple((str(k), str(v)) for k, v in conventions.items()))
        failures = tuple(self.expected_failures)
        if any(not isinstance(f, ExpectedFailure) for f in failures):
            raise TypeError("expected_failures: expected ExpectedFailure objects")
        object.__setattr__(self, "expected_failures", failures)

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants of the sdpa contract this backend declares."""
        return tuple(name for name in VARIANTS if getattr(self, name))

    @property
    def alignment(self) -> str:
        """The causal alignment the backend is judged by (the declared one, else top-left)."""
        return self.causal_alignment or "top-left"

    def expected_failure(self, clause: str, dtype: str) -> ExpectedFailure | None:
        """The declared known departure from ``clause`` at ``dtype``, if any."""
        return next((f for f in self.expected_failures if f.applies(clause, dtype)), None)

    def replace(self, **changes: Any) -> "Declaration":
        """A copy with ``changes``; unknown names raise a TypeError listing the known ones."""
        known = {item.name for item in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown declaration field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")


FIELDS = {item.name: item for item in dataclasses.fields(Declaration)}
