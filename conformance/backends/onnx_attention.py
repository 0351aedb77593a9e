"""ONNX's ``Attention`` operator (opset 23) as an ``sdpa`` backend, run by onnxruntime or by ONNX's reference.

Each call builds (and caches) a one-node model ``Y = Attention(Q, K, V[, attn_mask])`` with the
attributes ``is_causal``, ``scale``, ``softcap`` (logit soft-capping, applied before the mask, as
the spec orders it) and, with a window, ``left_window_size`` and ``right_window_size`` (opset 25;
-1 for an unbounded side; aligned top-left like ``is_causal``), in the 4-D layout ``(B, H, L, E)``: the contract's leading
dims become ``(B, H)`` (one dim: ``H = 1``; none: ``B = H = 1``) and the mask is broadcast to
``(B, H, L, S)``. A bool mask keeps the keys marked True; a float mask, in the inputs' dtype, is
added to the scores.

Measured with onnx 1.23 and onnxruntime 1.32 on CPU: both run float64, float32 and float16
(onnxruntime has no bfloat16 kernel for it), accept ``attn_mask`` together with ``is_causal``,
``Ev != E`` and key/value with fewer heads than the query (grouped-query attention, the heads
read from the 4-D shapes), align ``is_causal`` top-left and give zeros for a row whose every key
is masked.

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

ELEMENT = {"float64": 11, "float32": 1, "float16": 10, "bool": 9}  # onnx.TensorProto element types
NAMES = ("Q", "K", "V", "attn_mask")


class OnnxAdapter(NumpyAdapter):
    """NumPy arrays, for a backend that needs onnx (and onnxruntime)."""

    def __init__(self, packages: tuple[str, ...]) -> None:
        self.packages = packages

    def unavailable(self) -> str | None:
        import importlib.util

        missing = [p for p in self.packages if importlib.util.find_spec(p) is None]
        return f"{' and '.join(missing)} not installed (pip install 'kqv[onnx]')" if missing else None


@functools.lru_cache(maxsize=256)
def _model(dtype: str, mask: str | None, is_causal: bool, scale: float | None, softcap: float | None = None,
           window: tuple[int | None, int | None] | None = None) -> bytes:
    """The one-node model; opset 23, or 25 with a window (``left_window_size``/``right_window_size``, -1 unbounded)."""
    from onnx import helper

    inputs = [helper.make_tensor_value_info(name, ELEMENT[dtype], None) for name in NAMES[:3]]
    if mask is not None:
        inputs.append(helper.make_tensor_value_info("attn_mask", ELEMENT[mask], None))
    attributes = {"is_causal": int(is_causal)}
    if scale is not None:
        attributes["scale"] = float(scale)
    if softcap is not None:
        attributes["softcap"] = float(softcap)
    if window is not None:
        attributes["left_window_size"], attributes["right_window_size"] = (-1 if side is None else int(side)
                                                                           for side in window)
    node = helper.make_node("Attention", [i.name for i in inputs], ["Y"], **attributes)
    graph = helper.make_graph([node], "attention", inputs, [helper.make_tensor_value_info("Y", ELEMENT[dtype], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23 if window is None else 25)])
    model.ir_version = 10
    return model.SerializeToString()


@functools.lru_cache(maxsize=256)
def _session(runtime: str, dtype: str, mask: str | None, is_causal: bool, scale: float | None,
             softcap: float | None = None, window: tuple[int | None, int | None] | None = None):
    model = _model(dtype, mask, is_causal, scale, softcap, window)
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


def attention(runtime: str):
    """The ``sdpa`` function that runs the one-node model on ``runtime`` (onnxruntime or reference)."""
    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
             softcap=None, window=None):
        # Grouped-query attention needs nothing more: with 4-D inputs the operator reads the heads from the shapes.
        if dropout_p:
            raise ValueError("ONNX Attention has no dropout")
        leading, L = query.shape[:-2], query.shape[-2]
        feeds = dict(zip(NAMES, (np.ascontiguousarray(as_batch_heads(a)) for a in (query, key, value))))  # (B, H, n, d)
        mask = None
        if attn_mask is not None:
            B, H = feeds["Q"].shape[:2]
            feeds["attn_mask"] = np.ascontiguousarray(np.broadcast_to(as_batch_heads(attn_mask), (B, H) + attn_mask.shape[-2:]))
            mask = "bool" if attn_mask.dtype == np.bool_ else query.dtype.name
        window = None if window is None else tuple(window)
        session = _session(runtime, query.dtype.name, mask, bool(is_causal), scale, softcap, window)
        (out,) = session.run(None, feeds)  # (B, H, L, Ev)
        return out.reshape(leading + (L, value.shape[-1]))
    sdpa.__name__ = f"attention_{runtime}"
    return sdpa


def backend(runtime: str) -> Backend:
    # ONNX's reference computes the default scale in float64: only the checks that draw explicit scales see the error.
    known = tuple(f for f in imprecise("sdpa", ("float64",), SCALE, explicit_scales_only=runtime == "reference")
                  if f.clause not in CAPPED)
    known += tuple(ExpectedFailure(clause, SOFTCAP if runtime == "reference" else f"{SCALE}; {SOFTCAP}", ("float64",))
                   for clause in CAPPED)
    declaration = Declaration(kind="sdpa", dtypes=("float64", "float32", "float16"), masked_rows="zeros",
                              causal_alignment="top-left", gqa=True, softcap=True, window=True,
                              expected_failures=known,
                              conventions=(("layout", "(B, H, L, E), mapped from (..., L, E)"),
                                           ("mask polarity", "True = attend")))
    packages = ("onnx", "onnxruntime") if runtime == "onnxruntime" else ("onnx",)
    name = "onnxruntime-attention-cpu" if runtime == "onnxruntime" else "onnx-reference-attention"
    return Backend(name, attention(runtime), declaration, OnnxAdapter(packages),
                   description=f"ONNX Attention (opset 23; 25 with a window) on {'onnxruntime, CPU provider' if runtime == 'onnxruntime' else 'onnx.reference.ReferenceEvaluator'}")
