"""``jax.nn.dot_product_attention`` as an ``sdpa`` backend.

JAX lays attention out as ``(B, L, H, E)`` (batch, sequence, heads, features); the contract's ``(..., L, E)`` maps to
it with the leading dims as ``(B, H)`` (one dim: ``H = 1``; none: ``B = H = 1``). With ``enable_gqa`` the key and
value have fewer heads than the query, which JAX takes as grouped-query attention (query head ``n`` reads key/value
head ``n // G``). A bool ``attn_mask`` is JAX's ``mask`` (True = attend), a float one its ``bias``, both broadcast to
``(B, H, L, S)``. float64 needs ``jax_enable_x64``, which the adapter turns on. JAX requires ``Ev = E``; its arrays
have no strides, so non-contiguous inputs do not apply.

Measured with jax 0.10 on CPU, two known departures:

- float64 is computed with the softmax in float32 (``_dot_product_attention_core`` casts the
  logits to float32), so float64 outputs are off by about 1e-8 relative, some ten million times
  the float64 bound, in every clause judged against the reference;
- a row that keeps no key gives the mean of the values through a bool mask (JAX fills masked
  scores with ``finfo.min``), NaN through a ``-inf`` float mask, and, when a ``-inf`` float mask
  and ``is_causal`` together mask a whole row, the value of a key the causal mask hides (the
  causal fill ``finfo.min`` beats ``-inf``); its lse (``return_residual``) is then about ``-2.4e38``
  rather than ``-inf``, except through a ``-inf`` float mask.

``return_residual=True`` returns the lse of each row, natural log, ``(B, L, H)``, in the inputs'
dtype (float16 for float16, rounded from its float32 softmax).

The backward pass (``backward=True``) is ``jax.vjp`` of the same call (``JaxAdapter.vjp``). Measured with jax 0.10:
its float64 gradients inherit the float32 softmax (about 1e-8 relative, some 1e6 times the float64 bound of clause
``gradient.accuracy``), and the gradients of a row that keeps no key follow its output's convention (uniform
through a bool mask, NaN through a ``-inf`` float mask): known departures from ``gradient.masked-row``.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters import Adapter, OutputTypeError
from ..backend import Backend
from ..declaration import Declaration, ExpectedFailure
from ..dtypes import DTYPES
from .findings import imprecise
from .layout import as_batch_heads


class JaxAdapter(Adapter):
    """JAX arrays on the CPU; float64 with ``jax_enable_x64``."""

    name = "jax"
    array_type = "jax.Array"
    differentiates = True

    def unavailable(self) -> str | None:
        try:
            import jax  # noqa: F401
        except ImportError:
            return "jax is not installed (pip install 'kqv[jax]')"
        return None

    def to_native(self, array: np.ndarray, layout: str = "contiguous") -> Any:
        """A JAX array on the CPU, by ``jax.device_put``: ``jnp.asarray`` would compile a program per shape."""
        import jax

        _configure()
        return jax.device_put(np.ascontiguousarray(array))

    def vjp(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], grad_output: Any) -> tuple[Any, ...]:
        """``jax.vjp`` of ``fn`` in its array arguments (the keywords held fixed), pulled back from ``grad_output``."""
        import jax

        output, pull_back = jax.vjp(lambda *arrays: fn(*arrays, **kwargs), *args)
        if not isinstance(output, jax.Array):
            raise TypeError(f"the call returned {type(output).__module__}.{type(output).__qualname__}, expected a "
                            f"jax.Array to differentiate")
        return tuple(pull_back(grad_output))

    def to_numpy(self, value: Any) -> np.ndarray:
        import jax

        if not isinstance(value, jax.Array):
            raise OutputTypeError(f"returned {type(value).__module__}.{type(value).__qualname__}, "
                                  f"expected {self.array_type}")
        return np.array(value, copy=True)


def cache_dir() -> Path:
    """Where kqv keeps JAX's compiled programs between runs: ``$KQV_CACHE_DIR/jax``, else under
    ``$XDG_CACHE_HOME`` (``~/.cache``) ``/kqv/jax``."""
    root = os.environ.get("KQV_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                            os.path.expanduser("~/.cache"), "kqv")
    return Path(root) / "jax"


@functools.lru_cache(maxsize=None)
def _configure() -> None:
    """float64 (``jax_enable_x64``), and JAX's persistent compilation cache in :func:`cache_dir` unless the user set
    one (``JAX_COMPILATION_CACHE_DIR`` or ``jax_compilation_cache_dir``): a second run, and each process of
    ``--jobs``, loads the programs an earlier one compiled instead of compiling them again. Every program is kept,
    however quick its compilation: the suite's are all small."""
    import jax

    jax.config.update("jax_enable_x64", True)
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _attention(query, key, value, attn_mask, scale, is_causal, window=None, lengths=None, residual=False):
    """The contract's call as one function of JAX arrays, the layout mapping included, so that under ``jax.jit``
    (:func:`_jitted`) the transposes compile into the one program of each shape instead of one each. ``window``
    is JAX's ``local_window_size``, two integers (an unbounded side given as ``max(L, S)``); ``lengths`` its
    ``key_value_seq_lengths``, one per flattened batch entry ``B``; ``residual`` JAX's ``return_residual``, which
    returns the lse too, ``(B, L, H)``, mapped to the contract's ``(..., L)``."""
    import jax

    leading, L = query.shape[:-2], query.shape[-2]
    q, k, v = (as_batch_heads(a).transpose(0, 2, 1, 3) for a in (query, key, value))  # (B, L, H, E)
    mask = bias = None
    if attn_mask is not None:
        full = as_batch_heads(attn_mask)  # (B or 1, H or 1, L, S)
        if attn_mask.dtype == bool:
            mask = full
        else:
            bias = full
    result = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, scale=scale, is_causal=is_causal,
                                          local_window_size=window, key_value_seq_lengths=lengths,
                                          return_residual=residual)
    out, lse = result if residual else (result, None)  # (B, L, H, E), (B, L, H)
    out = out.transpose(0, 2, 1, 3).reshape(leading + (L, v.shape[-1]))  # (..., L, Ev)
    return (out, lse.transpose(0, 2, 1).reshape(leading + (L,))) if residual else out  # lse (..., L)


@functools.lru_cache(maxsize=None)
def _jitted():
    """:func:`_attention` under one ``jax.jit``: one XLA compilation per shape and dtype, two to five
    times faster on the suite's many small shapes than the op-by-op compilation of eager calls.

    JAX asks for its half-precision logits with an explicit dot algorithm (``F16_F16_F32``,
    ``BF16_BF16_F32``) and, where the platform refuses it, retries with the default precision. That
    retry is a ``try`` around the eager einsum, so it only works eagerly: under an outer jit the
    refusal surfaces when the whole function is lowered. With jax 0.10 on CPU, float16 is always
    refused ("not supported by dot_general on CPU") and bfloat16 only on some shapes (L = S = 1:
    "ALG_DOT_BF16_BF16_F32" in the elemental emitter). Where it accepts bfloat16, the jitted program
    can abort the whole process: at B = H = 1, E = 1, L = S = 64 (63 runs) XLA fails a check in
    ``ynn_emitter.cc`` ("reshape vs. bitcast"). ``sdpa`` therefore calls JAX eagerly for float16
    and bfloat16, slower (every primitive compiled per shape, and for float16 the refused dot tried
    again on every call: about 6 ms a call against 0.15 ms jitted) but what a user's eager call computes."""
    import jax

    return jax.jit(_attention, static_argnums=(5, 6, 8))  # a traced scale: one compilation for every explicit scale


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
         window=None, kv_lengths=None, return_lse=False):
    """JAX takes fewer key/value heads than query heads as they come (``N % K == 0``): ``enable_gqa`` is in the shapes.
    ``window=(left, right)`` is JAX's ``local_window_size``, aligned top-left like its ``is_causal``; JAX takes no
    unbounded side, so None becomes ``max(L, S)``, which keeps every key on that side (clause ``window.no-window``).
    ``kv_lengths`` is JAX's ``key_value_seq_lengths``, repeated over the dims before ``(B, H)``, which JAX's one
    batch dim holds too; top-left, so no offset moves with the lengths. ``return_lse`` is JAX's ``return_residual``:
    the natural-log lse in the inputs' dtype (clause ``lse.definition``)."""
    if dropout_p:
        raise ValueError("jax.nn.dot_product_attention has no dropout")
    if window is not None:
        wide = max(query.shape[-2], key.shape[-2])
        window = tuple(wide if side is None else int(side) for side in window)
    lengths = None
    if kv_lengths is not None:
        entries = math.prod(query.shape[:-4])  # the dims before (B, H) fold into JAX's one batch dim, C order
        lengths = np.tile(np.asarray(kv_lengths, dtype=np.int32), entries)  # (prod(...) * B,)
    attend = _jitted() if query.dtype.itemsize >= 4 else _attention  # see _jitted: jit is unsafe for half precision
    return attend(query, key, value, attn_mask, scale, bool(is_causal), window, lengths, bool(return_lse))


def backend() -> Backend:
    declaration = Declaration(
        kind="sdpa", dtypes=DTYPES, value_width=False, strided=False, causal_alignment="top-left", gqa=True, window=True,
        kv_lengths=True, lse=True, backward=True, shapes=6,
        conventions=(("layout", "(B, L, H, E), mapped from (..., L, E)"),
                     ("mask polarity", "True = attend (mask); float masks as bias")),
        expected_failures=(ExpectedFailure(
            "mask.fully-masked-row", "a row that keeps no key gives the mean of the values through a bool mask "
            "(finfo.min fill), NaN through a -inf float mask, and the value of a causally hidden key when a -inf float "
            "mask and is_causal mask the whole row: the convention depends on the mask"),
            ExpectedFailure("lse.empty-row", "the residual of a row that keeps no key is about -2.4e38 through a bool "
                            "mask or a key length of 0 (the finfo.min fill), -inf only through a -inf float mask"),
            ExpectedFailure("gradient.masked-row", "the gradients of a row that keeps no key follow its output: the "
                            "uniform convention's through a bool mask (each value row gets dO_i / S), NaN through a "
                            "-inf float mask"))
        + tuple(f for f in imprecise("sdpa", ("float64",), "float64 is computed with the softmax in float32 "
                                     "(jax casts the logits to float32): about 1e-8 relative error")
                if f.clause not in ("mask.fully-masked-row", "lse.empty-row", "gradient.masked-row")),
    )
    return Backend("jax-sdpa-cpu", sdpa, declaration, JaxAdapter(), description="jax.nn.dot_product_attention (XLA, CPU)")
