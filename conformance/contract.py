"""The call each kind makes, and whether a target's signature can take it, checked before any case runs.

A function with the wrong signature would fail every clause with the same ``TypeError``; instead
``kqv check`` stops with exit status 2 and shows the contract's signature next to the target's. The
call is the one the kind's checks make under the backend's declaration: the positional arguments
(``query, key, value``), the keywords always passed (``num_heads``), and the keywords of what it
declares (``attn_mask`` for masks, ``is_causal``, ``scale``, ``enable_gqa``, ``window``, ...), each
of which a declaration can take away (``--no-scale``). Only a signature Python reports for Python
code is judged, and only a call it certainly refuses (``inspect.Signature.bind``): builtins, C
functions and objects whose signature cannot be read are never refused.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from .declaration import Declaration
from .options import OPTIONS

# The keyword each variant of sdpa adds to the call (kqv.conformance.variants; a test keeps the two in step).
VARIANT_KEYWORDS = {"gqa": "enable_gqa", "window": "window", "softcap": "softcap", "alibi": "alibi_slopes",
                    "kv_lengths": "kv_lengths", "sinks": "sinks", "lse": "return_lse"}
BIASES = ("b_q", "b_k", "b_v", "b_o")


def _mask_and_causal(declaration: Declaration) -> dict[str, tuple[str, ...]]:
    keywords = {}
    masks = tuple(name for name in ("bool_mask", "float_mask") if getattr(declaration, name))
    if masks:
        keywords["attn_mask"] = masks
    if declaration.causal:
        keywords["is_causal"] = ("causal",)
    return keywords


def _sdpa_keywords(declaration: Declaration) -> dict[str, tuple[str, ...]]:
    keywords = _mask_and_causal(declaration)
    if declaration.scale:
        keywords["scale"] = ("scale",)
    keywords.update((VARIANT_KEYWORDS[name], (name,)) for name in declaration.variants if name in VARIANT_KEYWORDS)
    return keywords


def _mha_keywords(declaration: Declaration) -> dict[str, tuple[str, ...]]:
    keywords = {name: ("biases",) for name in BIASES} if declaration.biases else {}
    return {**keywords, **_mask_and_causal(declaration)}


@dataclass(frozen=True)
class Contract:
    """The call of one kind: its signature as DESIGN.md writes it, the positional arguments and the keywords always
    passed, and ``keywords(declaration)``: each keyword the declared features pass, with the fields that take it away."""

    kind: str
    signature: str
    positional: tuple[str, ...]
    always: tuple[str, ...]
    keywords: Callable[[Declaration], dict[str, tuple[str, ...]]]

    def text(self, declaration: Declaration) -> str:
        """The signature, with the keywords of the declared variants."""
        added = [f"{VARIANT_KEYWORDS[name]}=..." for name in declaration.variants if name in VARIANT_KEYWORDS] \
            if self.kind == "sdpa" else []
        return self.signature if not added else f"{self.signature[:-1]}, {', '.join(added)})"


CONTRACTS = {
    "sdpa": Contract("sdpa", "fn(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None)",
                     ("query", "key", "value"), (), _sdpa_keywords),
    "mha": Contract("mha", "fn(x_q, x_kv, w_q, w_k, w_v, w_o, b_q=None, b_k=None, b_v=None, b_o=None, *, num_heads, "
                           "attn_mask=None, is_causal=False)",
                    ("x_q", "x_kv", "w_q", "w_k", "w_v", "w_o"), ("num_heads",), _mha_keywords),
    "pe": Contract("pe", "fn(length, d_model)", ("length", "d_model"), (), lambda declaration: {}),
}


def _python_signature(fn: Any) -> inspect.Signature | None:
    """The signature of Python code that ``fn`` runs when called (through ``functools.partial`` and bound
    methods), as the outermost callable takes it; None for builtins, C code and signatures Python cannot read."""
    inner = fn
    while isinstance(inner, functools.partial):
        inner = inner.func
    python = inspect.isfunction(inner) or (inspect.ismethod(inner) and inspect.isfunction(inner.__func__)) \
        or (not inspect.isclass(inner) and inspect.isfunction(getattr(type(inner), "__call__", None)))
    if not python:
        return None
    try:
        return inspect.signature(fn, follow_wrapped=False)  # a wrapper's own signature: what it certainly takes
    except (TypeError, ValueError):
        return None


def refusal(fn: Any, declaration: Declaration, name: str) -> str | None:
    """Why ``fn`` cannot take the calls of its kind under ``declaration`` (the two signatures, and the declarations
    that would leave out a keyword it refuses), or None when it can or its signature cannot be judged."""
    signature = _python_signature(fn)
    if signature is None:
        return None
    contract = CONTRACTS[declaration.kind]
    always = {argument: None for argument in contract.always}
    try:
        signature.bind(*contract.positional, **always)
    except TypeError as error:
        called = ", ".join(contract.positional + tuple(f"{keyword}=..." for keyword in always))
        problem = f"it cannot be called as fn({called}): {error}"
    else:
        refused: dict[tuple[str, ...], list[str]] = {}  # the fields that take them away -> the keywords it refuses
        for keyword, fields in contract.keywords(declaration).items():
            try:
                signature.bind(*contract.positional, **always, **{keyword: None})
            except TypeError:
                refused.setdefault(fields, []).append(keyword)
        if not refused:
            return None
        problem = f"it takes no keyword {', '.join(k for keywords in refused.values() for k in keywords)}, which kqv " \
                  f"passes for what the declaration says it supports (declare " + "; ".join(
                      f"{' '.join(_flag(field) for field in fields)} if it takes no {' or '.join(keywords)}"
                      for fields, keywords in refused.items()) + ")"
    return (f"{name} cannot take the calls of the {contract.kind} contract: {problem}\n"
            f"  the {contract.kind} contract: {contract.text(declaration)}\n"
            f"  the target:{' ' * (len(contract.kind) + 4)}{_shown(fn, signature)}")


def _flag(field: str) -> str:
    return " ".join(OPTIONS[field].words(False))


def _shown(fn: Any, signature: inspect.Signature) -> str:
    """``name(parameters)``; a ``functools.partial`` shows as ``partial(name)(its remaining parameters)``."""
    inner, partials = fn, 0
    while isinstance(inner, functools.partial):
        inner, partials = inner.func, partials + 1
    label = getattr(inner, "__name__", None) or type(inner).__name__
    return f"{'partial(' * partials}{label}{')' * partials}{signature}"
