"""ONNX's ``Attention`` operator (opset 23, 24 or 25) as an ``sdpa`` backend, run by onnxruntime or by ONNX's reference.

Each call builds (and caches) a one-node model ``Y = Attention(Q, K, V[, attn_mask][, nonpad_kv_seqlen])``
at the lowest opset that has what the call needs (:func:`opset`): 23; 24 with key lengths
(``nonpad_kv_seqlen``); 25 with a window (``left_window_size`` and ``right_window_size``, -1 for
an unbounded side). The attributes are ``is_causal``, ``scale`` and ``softcap`` (logit soft-capping,
applied before the mask, as the spec orders it), in the 4-D layout ``(B, H, L, E)``: the contract's
leading dims become ``(B, H)`` (one dim: ``H = 1``; none: ``B = H = 1``) and the mask is broadcast to
``(B, H, L, S)``. A bool mask keeps the keys marked True; a float mask, in the inputs' dtype, is
added to the scores. ``kv_lengths`` (int ``(B,)``) is ``nonpad_kv_seqlen`` as it is, in int64:
the contract has at most two leading dims, so the B of ``(B, H)`` is the contract's own batch axis
before the heads (lengths reach only 4-D calls), and nothing is repeated.

Measured with onnx 1.23 and onnxruntime 1.32 on CPU: both run float64, float32 and float16
(onnxruntime has no bfloat16 kernel for it), accept ``attn_mask`` together with ``is_causal``,
``Ev != E`` and key/value with fewer heads than the query (grouped-query attention, the heads
read from the 4-D shapes), align ``is_causal`` and the window top-left and give zeros for a row whose
every key is masked. With ``nonpad_kv_seqlen`` both drop keys ``j >= n_b`` of entry ``b`` with a
bool or float mask, with grouped-query heads and at every dtype, give zeros for an entry of length
0 and for rows left without a key, and no number in the padding moves the output as long as it is
finite (a NaN or infinite padding value reaches the output in both runtimes; a NaN or infinite padding
key in onnx.reference only: kqv's padding check draws finite ones).

Known departure, at every dtype: with ``nonpad_kv_seqlen`` the operator aligns ``is_causal`` and
the window bottom-right to each entry's valid keys, offset ``n_b - L`` (the opset 24 errata of onnx
1.23; onnxruntime the same, rows with a negative offset left without a key, not clamped), while
without it both are top-left, the alignment declared, whose offset is 0 with or without lengths
(clause ``lengths.offset``). So with key lengths and ``is_causal`` or a window the output departs
wherever ``n_b != L``, and lengths of ``S`` move a causal or windowed call with ``L != S`` (clause
``lengths.full``). The adapter does not remap it (the declared alignment is one per backend); the
other checks draw key lengths under the causal rule or a window only where the offset is 0 in both
alignments (``n_b = L``), so it shows on those two clauses only. Reproduce:
``kqv check onnxruntime-attention-cpu --clause lengths.offset`` (or ``--clause lengths.full``;
the same for ``onnx-reference-attention``).

Known departures at float64: the operator scales ``Q`` and ``K`` each by ``sqrt(scale)``, and that
square root is taken in float32 (an ONNX float attribute is 32-bit; onnxruntime computes the default
``1/sqrt(E)`` in float32 too; ONNX's reference only an explicit scale), so float64 outputs are off by
about 2e-8 relative whenever ``sqrt(scale)`` is not a float32 number; and the ``softcap``
attribute is rounded to float32 the same way, so float64 scores are capped at that number instead
of ``c`` (clauses ``softcap.formula``, ``softcap.order``, which draw any cap; the other checks draw
caps float32 holds exactly).
"""

from __future__ import annotations

import functools

import numpy as np

from ..adapters import NumpyAdapter
from ..backend import Backend
from ..declaration import Declaration, ExpectedFailure
from ..threads import configured
from .findings import imprecise
from .layout import as_batch_heads

SCALE = ("sqrt(scale) is taken in float32 before it multiplies float64 Q and K: about 2e-8 relative error "
         "(ONNX float attributes are 32-bit)")

SOFTCAP = ("the softcap attribute is 32-bit too: c is rounded to float32, so float64 scores are capped at that "
           "number, up to 3e-8 relative away from c")
CAPPED = ("softcap.formula", "softcap.order")  # the clauses that draw caps float32 does not hold

OFFSET = ("with nonpad_kv_seqlen (kv_lengths) ONNX aligns is_causal and the window bottom-right to each entry's valid "
          "keys, offset n_b - L, where without it they are top-left, the alignment declared (offset 0): the causal "
          "rule and the window move by n_b - L")
FULL = ("lengths of S give nonpad_kv_seqlen = S, which moves is_causal and the window to the offset S - L "
        "(bottom-right), where the call without lengths has them top-left: a causal or windowed call with L != S "
        "changes")
ALIGNED = {"lengths.offset": OFFSET, "lengths.full": FULL}  # the clauses that draw lengths the offset moves

ELEMENT = {"float64": 11, "float32": 1, "float16": 10, "bool": 9, "int64": 7}  # onnx.TensorProto element types
NAMES = ("Q", "K", "V", "attn_mask")
INPUTS = ("Q", "K", "V", "attn_mask", "past_key", "past_value", "nonpad_kv_seqlen")  # the operator's, by position
OUTPUTS = ("Y", "present_key", "present_value")  # the operator's first three, by position


class OnnxAdapter(NumpyAdapter):
    """NumPy arrays, for a backend that needs onnx (and onnxruntime)."""

    def __init__(self, packages: tuple[str, ...]) -> None:
        self.packages = packages

    def unavailable(self) -> str | None:
        import importlib.util

        missing = [p for p in self.packages if importlib.util.find_spec(p) is None]
        return f"{' and '.join(missing)} not installed (pip install 'kqv[onnx]')" if missing else None


def opset(lengths: bool, window: bool) -> int:
    """The lowest opset that has what the call needs: 25 for a window (``left_window_size``/``right_window_size``),
    24 for key lengths (``nonpad_kv_seqlen``), else 23."""
    return 25 if window else 24 if lengths else 23


@functools.lru_cache(maxsize=256)
def _model(dtype: str, mask: str | None, is_causal: bool, scale: float | None, softcap: float | None = None,
           window: tuple[int | None, int | None] | None = None, lengths: bool = False, past: bool = False) -> bytes:
    """The one-node model at :func:`opset`; a window as ``left_window_size``/``right_window_size`` (-1 unbounded),
    key lengths as the input ``nonpad_kv_seqlen`` (int64, ``(B,)``); with ``past`` the inputs ``past_key`` and
    ``past_value`` and the outputs ``present_key`` and ``present_value`` (the cache after the call)."""
    from onnx import helper

    types = {"Q": ELEMENT[dtype], "K": ELEMENT[dtype], "V": ELEMENT[dtype]}
    if mask is not None:
        types["attn_mask"] = ELEMENT[mask]
    if past:
        types["past_key"] = types["past_value"] = ELEMENT[dtype]
    if lengths:
        types["nonpad_kv_seqlen"] = ELEMENT["int64"]
    inputs = [helper.make_tensor_value_info(name, types[name], None) for name in INPUTS if name in types]
    used = [name if name in types else "" for name in INPUTS]  # an input left out is an empty name
    while not used[-1]:
        used.pop()
    attributes = {"is_causal": int(is_causal)}
    if scale is not None:
        attributes["scale"] = float(scale)
    if softcap is not None:
        attributes["softcap"] = float(softcap)
    if window is not None:
        attributes["left_window_size"], attributes["right_window_size"] = (-1 if side is None else int(side)
                                                                           for side in window)
    outputs = OUTPUTS if past else OUTPUTS[:1]
    node = helper.make_node("Attention", used, list(outputs), **attributes)
    graph = helper.make_graph([node], "attention", inputs,
                              [helper.make_tensor_value_info(name, ELEMENT[dtype], None) for name in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset(lengths, window is not None))])
    model.ir_version = 10
    return model.SerializeToString()


@functools.lru_cache(maxsize=256)
def _session(runtime: str, dtype: str, mask: str | None, is_causal: bool, scale: float | None,
             softcap: float | None = None, window: tuple[int | None, int | None] | None = None, lengths: bool = False,
             past: bool = False):
    model = _model(dtype, mask, is_causal, scale, softcap, window, lengths, past)
    if runtime == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        threads = configured()
        if threads is not None:  # this process's share of the cores under kqv check --jobs
            options.intra_op_num_threads = options.inter_op_num_threads = threads
        return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    import onnx
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(onnx.load_from_string(model))


def feeds_of(query, key, value, attn_mask=None) -> tuple[dict[str, np.ndarray], str | None]:
    """``Q``, ``K``, ``V`` in the 4-D layout ``(B, H, n, d)`` and ``attn_mask`` broadcast to ``(B, H, L, S)``, with the
    mask's element type (``bool``, the inputs' dtype, or None without a mask)."""
    feeds = dict(zip(NAMES, (np.ascontiguousarray(as_batch_heads(a)) for a in (query, key, value))))  # (B, H, n, d)
    if attn_mask is None:
        return feeds, None
    B, H = feeds["Q"].shape[:2]
    feeds["attn_mask"] = np.ascontiguousarray(np.broadcast_to(as_batch_heads(attn_mask),
                                                              (B, H) + attn_mask.shape[-2:]))  # (B, H, L, S)
    return feeds, "bool" if attn_mask.dtype == np.bool_ else query.dtype.name


def lengths_of(kv_lengths, query, B: int) -> np.ndarray:
    """The contract's ``kv_lengths`` (int ``(B,)``, B the axis before the heads, so 4-D calls only) as the operator's
    ``nonpad_kv_seqlen``, int64 ``(B,)``; a ValueError for any other shape."""
    if query.ndim != 4:
        raise ValueError(f"kv_lengths needs the batch axis before the heads, query (B, H, L, E); got query "
                         f"shape {query.shape}")
    lengths = np.asarray(kv_lengths)
    if lengths.shape != (B,):
        raise ValueError(f"kv_lengths: expected shape ({B},), one length per batch entry; got {lengths.shape}")
    return np.ascontiguousarray(lengths, dtype=np.int64)  # (B,)


def run(runtime: str, feeds: dict[str, np.ndarray], mask: str | None, is_causal: bool, scale: float | None,
        softcap: float | None = None, window=None, outputs: tuple[str, ...] = OUTPUTS[:1]) -> list[np.ndarray]:
    """The ``outputs`` of the one-node model for ``feeds`` (``nonpad_kv_seqlen`` and ``past_key``/``past_value``
    among them when given) on ``runtime``."""
    window = None if window is None else tuple(window)
    session = _session(runtime, feeds["Q"].dtype.name, mask, bool(is_causal), scale, softcap, window,
                       "nonpad_kv_seqlen" in feeds, "past_key" in feeds)
    return session.run(list(outputs), feeds)


def attention(runtime: str):
    """The ``sdpa`` function that runs the one-node model on ``runtime`` (onnxruntime or reference)."""
    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
             softcap=None, window=None, kv_lengths=None):
        """``kv_lengths`` (int ``(B,)``, B the axis before the heads) is the operator's ``nonpad_kv_seqlen`` (opset
        24): the adapter's B is the contract's, so the lengths go as they are, in int64. Grouped-query attention
        needs nothing more: with 4-D inputs the operator reads the heads from the shapes."""
        if dropout_p:
            raise ValueError("ONNX Attention has no dropout")
        leading, L = query.shape[:-2], query.shape[-2]
        feeds, mask = feeds_of(query, key, value, attn_mask)
        if kv_lengths is not None:
            feeds["nonpad_kv_seqlen"] = lengths_of(kv_lengths, query, feeds["Q"].shape[0])  # (B,)
        (out,) = run(runtime, feeds, mask, is_causal, scale, softcap, window)  # (B, H, L, Ev)
        return out.reshape(leading + (L, value.shape[-1]))
    sdpa.__name__ = f"attention_{runtime}"
    return sdpa


def departures(runtime: str, aligned: dict[str, str]) -> tuple[ExpectedFailure, ...]:
    """The known departures of ``runtime``: the float32 ``sqrt(scale)`` at float64 (ONNX's reference: explicit scales
    only), the float32 ``softcap`` at float64, and the clauses of ``aligned`` (clause -> reason) at every dtype."""
    # ONNX's reference computes the default scale in float64: only the checks that draw explicit scales see the error.
    imprecision = imprecise("sdpa", ("float64",), SCALE, explicit_scales_only=runtime == "reference")
    known = tuple(f for f in imprecision if f.clause not in CAPPED + tuple(aligned))
    known += tuple(ExpectedFailure(clause, SOFTCAP if runtime == "reference" else f"{SCALE}; {SOFTCAP}", ("float64",))
                   for clause in CAPPED)
    scaled = {f.clause for f in imprecision}
    for clause, reason in aligned.items():  # at every dtype; at float64 with the scale's error where it shows
        known += ((ExpectedFailure(clause, f"{reason}; {SCALE}", ("float64",)),
                   ExpectedFailure(clause, reason, ("float32", "float16"))) if clause in scaled
                  else (ExpectedFailure(clause, reason),))
    return known


def packages(runtime: str) -> tuple[str, ...]:
    """What ``runtime`` needs installed."""
    return ("onnx", "onnxruntime") if runtime == "onnxruntime" else ("onnx",)


def backend(runtime: str) -> Backend:
    declaration = Declaration(kind="sdpa", dtypes=("float64", "float32", "float16"), masked_rows="zeros",
                              causal_alignment="top-left", gqa=True, softcap=True, window=True, kv_lengths=True,
                              expected_failures=departures(runtime, ALIGNED),
                              conventions=(("layout", "(B, H, L, E), mapped from (..., L, E)"),
                                           ("mask polarity", "True = attend")))
    name = "onnxruntime-attention-cpu" if runtime == "onnxruntime" else "onnx-reference-attention"
    where = "onnxruntime, CPU provider" if runtime == "onnxruntime" else "onnx.reference.ReferenceEvaluator"
    return Backend(name, attention(runtime), declaration, OnnxAdapter(packages(runtime)),
                   description=f"ONNX Attention (opset 23; 24 with key lengths, 25 with a window) on {where}")
