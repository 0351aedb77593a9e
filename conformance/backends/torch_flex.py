"""``torch.nn.attention.flex_attention.flex_attention`` on the CPU, called eagerly, as an ``sdpa`` backend.

FlexAttention takes ``(B, H, L, E)`` tensors and two user functions: a ``score_mod(score, b, h, q_idx, kv_idx)``
that changes each scaled score and a ``mask_mod(b, h, q_idx, kv_idx)``, given in a ``BlockMask`` from
``create_block_mask``, that keeps a key or drops it. The adapter maps the contract onto them the way a FlexAttention
user writes each one:

- layout: the contract's ``(..., L, E)`` becomes ``(B, H, L, E)`` (one leading dim: ``H``, ``B = 1``; none:
  ``B = H = 1``), as :func:`~kqv.conformance.backends.layout.as_batch_heads` does;
- ``scale`` is flex's ``scale`` (None: flex's ``1/sqrt(E)``); ``enable_gqa`` is flex's ``enable_gqa=True``, which
  repeats each key/value head over its group (query head ``h`` reads ``h // G``);
- ``score_mod``, in the spec's order: ``softcap=c`` gives ``c * tanh(score / c)``; ``alibi_slopes`` (``(H_q,)`` or
  ``(B, H_q)``) give ``score - m[b, h] * |q_idx - kv_idx|``; a float ``attn_mask`` gives
  ``score + mask[b, h, q_idx, kv_idx]``;
- ``mask_mod``, the rules and-ed with ``and_masks``: a bool ``attn_mask`` keeps ``mask[b, h, q_idx, kv_idx]``;
  ``is_causal`` keeps ``kv_idx <= q_idx``; ``window=(left, right)`` keeps ``q_idx - left <= kv_idx <= q_idx + right``;
  ``kv_lengths`` keeps ``kv_idx < n[b]``. The positions are FlexAttention's own indices, so the causal rule, the
  window and the ALiBi distance are aligned top-left (offset 0, with key lengths too), as FlexAttention's documented
  ``causal_mask`` (``q_idx >= kv_idx``) and torch's sdpa are: declared ``causal_alignment="top-left"``;
- ``return_lse`` is flex's ``return_aux=AuxRequest(lse=True)`` (its ``return_lse=True`` is deprecated): the lse
  ``(B, H, L)`` in natural log (the dense implementation divides ``logsumexp`` by ``ln 2``, the log2 its fused kernels
  keep, and the top-level call multiplies it back by ``ln 2``), ``-inf`` for a row with no kept key, float64 for
  float64 inputs and float32 otherwise;
- ``sinks``: FlexAttention has no sink argument. The adapter does the one step its users add after the call: ``lse``
  being flex's log-denominator over the kept keys, the sink's term ``exp(sink_h)`` joins the denominator, so
  ``out * sigmoid(lse - sink_h)`` is the output of ``sinks.formula`` and ``logaddexp(lse, sink_h)`` its lse, and a row
  with no kept key (``lse = -inf``, ``out = 0``) gives 0 and the lse ``sink_h`` (clauses ``sinks.empty-row``,
  ``lse.empty-row``). The step runs in the lse's precision (float32 for float16 and bfloat16), its sigmoid written
  ``exp(x) / (1 + exp(x))`` for ``x < 0``: torch's ``sigmoid`` overflows ``exp(-x)`` past ``-x = 88.7`` in float32
  and gives 0 where the share is still a subnormal number (``sinks.formula`` and ``sinks.mass`` caught it).

Every call passes the same ``score_mod`` and ``mask_mod``, a keyword left out giving its neutral parameter (no cap,
slopes 0, a bias 0, every key kept, an unbounded side ``L + S``, lengths ``S``), their parameters dense tensors. The
reason is speed: called without ``torch.compile``, torch 2.13 still runs ``flex_attention`` through
``torch.compile(backend="eager", fullgraph=True)`` (dynamo traces the mods, nothing is generated, no C compiler is
needed; ``_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG`` alone skips it) and traces again, about 0.3 to 1 s, for each new
combination of mods, captured Python numbers, dtypes, sizes of 1 and strides. Mods written per call (only those
that apply, numbers captured as Python numbers) traced 639 times in a ``quick`` run (3312 calls, 555 s of 816);
this form 62 times. The computation is ``sdpa_dense``: ``Q K^T`` in float64 for float64 inputs and float32
otherwise, times the scale, the ``score_mod`` and ``mask_mod`` applied through ``vmap``, a softmax that gives 0 to a
row with no kept key (``masked_rows="zeros"``), and the weights rounded to the inputs' dtype before ``@ V``. It runs
float64, float32, float16 and bfloat16, and takes ``Ev != E``, non-contiguous inputs and ``L != S``.

A call takes about 16 ms whatever its size (one thread, two busy cores; ``create_block_mask`` 5 ms of it, the
``vmap`` of the mods most of the rest), 1.5 s for the first of a process and 0.3 to 1 s for each new trace, so the
backend declares a budget of 6 shapes per dtype, like ``jax-sdpa-cpu``: without it the same run traced 328 times.
FlexAttention has no backward on the CPU (it refuses tensors that require grad).
"""

from __future__ import annotations

import warnings

from ..adapters import TorchAdapter
from ..backend import Backend
from ..declaration import Declaration
from ..dtypes import DTYPES
from .layout import as_batch_heads

EAGER_WARNING = "flex_attention called without torch.compile()"  # flex's one-time notice: eager is what we test


class FlexAdapter(TorchAdapter):
    """torch tensors on the CPU; unavailable without ``torch.nn.attention.flex_attention`` or dynamo."""

    def unavailable(self) -> str | None:
        missing = super().unavailable()
        if missing:
            return missing
        try:
            from torch.nn.attention.flex_attention import AuxRequest, flex_attention  # noqa: F401
        except ImportError as error:
            return f"this torch has no FlexAttention with AuxRequest (torch.nn.attention.flex_attention): {error}"
        import torch

        if not torch._dynamo.is_dynamo_supported():
            return "FlexAttention needs dynamo, which this Python or platform does not support"
        return None


def _dense(tensor):
    """A fresh C-contiguous copy: the strides dynamo guards on are then those of the shape alone."""
    import torch

    return torch.empty(tensor.shape, dtype=tensor.dtype).copy_(tensor)


def _per_head(parameter, B: int, H: int, dtype):
    """Per-head parameters ``(H,)`` or ``(B, H)`` (lined up from the right) as a ``(B, H)`` tensor of ``dtype``."""
    import torch

    return torch.as_tensor(parameter, dtype=torch.float64).to(dtype).expand(B, H)  # (B, H)


def score_mod_of(cap, slopes, bias):
    """The ``score_mod`` of the spec's stages 1-2: the cap ``c tanh(x / c)`` where ``cap > 0`` (0: no cap), the ALiBi
    bias ``-m[b, h] |q_idx - kv_idx|`` (top-left: offset 0; slopes 0: no bias), the float mask
    ``bias[b, h, q_idx, kv_idx]`` (0: none). One form for every call, its parameters tensors (see :func:`flex_sdpa`)."""
    import torch

    def score_mod(score, b, h, q_idx, kv_idx):
        score = torch.where(cap > 0, cap * torch.tanh(score / cap), score)
        score = score - slopes[b, h] * torch.abs(q_idx - kv_idx)
        return score + bias[b, h, q_idx, kv_idx]

    return score_mod


def mask_mod_of(keep, reach, left, right, lengths):
    """The ``mask_mod`` of stage 3: the bool mask ``keep[b, h, q_idx, kv_idx]``, the causal rule
    ``kv_idx <= q_idx + reach`` (``reach`` 0, or ``S`` without ``is_causal``), the window
    ``q_idx - left <= kv_idx <= q_idx + right`` (an unbounded side ``L + S``) and the key lengths
    ``kv_idx < lengths[b]``, all top-left, and-ed with ``and_masks``. One form for every call, its parameters tensors
    (see :func:`flex_sdpa`)."""
    from torch.nn.attention.flex_attention import and_masks

    return and_masks(lambda b, h, q_idx, kv_idx: keep[b, h, q_idx, kv_idx],
                     lambda b, h, q_idx, kv_idx: kv_idx <= q_idx + reach,
                     lambda b, h, q_idx, kv_idx: q_idx - kv_idx <= left,
                     lambda b, h, q_idx, kv_idx: kv_idx - q_idx <= right,
                     lambda b, h, q_idx, kv_idx: kv_idx < lengths[b])


def _stable_sigmoid(x):
    """``1 / (1 + exp(-x))`` as ``exp(x) / (1 + exp(x))`` for ``x < 0``: torch's ``sigmoid`` computes ``exp(-x)``,
    which overflows past ``-x = 88.7`` in float32 (709.8 in float64) and gives 0 where the sigmoid is still a
    subnormal number; ``x = -inf`` (a row with no kept key) gives 0."""
    import torch

    e = torch.exp(-torch.abs(x))
    return torch.where(x >= 0, 1 / (1 + e), e / (1 + e))


def flex_sdpa(score_mods=None, mask_mods=None):
    """The ``sdpa`` function, calling ``flex_attention`` with the ``score_mod`` of ``score_mods(cap, slopes, bias)``
    and the ``mask_mod`` of ``mask_mods(keep, reach, left, right, lengths)`` (by default :func:`score_mod_of` and
    :func:`mask_mod_of`; the tests pass a wrong copy of one and see the suite catch it)."""
    score_mods = score_mods or score_mod_of
    mask_mods = mask_mods or mask_mod_of

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
             window=None, softcap=None, alibi_slopes=None, kv_lengths=None, sinks=None, return_lse=False):
        """The contract's call through ``flex_attention`` (the module docstring gives each keyword's mapping).

        Every call has the same ``score_mod`` and ``mask_mod``, a keyword left out giving its neutral parameter (no
        cap, slopes 0, a bias 0, every key kept, a side ``L + S``, lengths ``S``), and their parameters are dense
        tensors: dynamo then traces them once per dtype and shape class instead of once per combination."""
        import torch
        from torch.nn.attention.flex_attention import AuxRequest, create_block_mask, flex_attention

        if dropout_p:
            raise ValueError("flex_attention has no dropout")
        leading, L = tuple(query.shape[:-2]), query.shape[-2]
        q, k, v = (as_batch_heads(t) for t in (query, key, value))  # (B, H, L, E), (B, H_kv, S, E), (B, H_kv, S, Ev)
        B, H, S = q.shape[0], q.shape[1], k.shape[-2]
        working = torch.float64 if query.dtype == torch.float64 else torch.float32  # flex's precision of the scores
        mask = None if attn_mask is None else as_batch_heads(attn_mask).expand(B, H, L, S)  # (B, H, L, S)
        floating = mask is not None and mask.dtype != torch.bool
        everywhere = (B, H, L, S)
        cap = torch.tensor(0.0 if softcap is None else float(softcap), dtype=working)
        slopes = _dense(_per_head(0.0 if alibi_slopes is None else alibi_slopes, B, H, working))  # (B, H)
        bias = _dense(mask.to(working) if floating
                      else torch.zeros((), dtype=working).expand(everywhere))  # (B, H, L, S)
        keep = _dense(mask if mask is not None and not floating
                      else torch.ones((), dtype=torch.bool).expand(everywhere))  # (B, H, L, S)
        left, right = (torch.tensor(L + S if side is None else int(side)) for side in (window or (None, None)))
        lengths = _dense(torch.as_tensor(S if kv_lengths is None else kv_lengths, dtype=torch.int64).expand(B))  # (B,)
        reach = torch.tensor(0 if is_causal else S)
        block_mask = create_block_mask(mask_mods(keep, reach, left, right, lengths), B, H, L, S, device=query.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=EAGER_WARNING)
            out, aux = flex_attention(q, k, v, score_mod=score_mods(cap, slopes, bias), block_mask=block_mask,
                                      scale=scale, enable_gqa=bool(enable_gqa),
                                      return_aux=AuxRequest(lse=True))  # (B, H, L, Ev)
        lse = aux.lse  # (B, H, L), natural log
        if sinks is not None:
            sink = _per_head(sinks, B, H, lse.dtype)[..., None]  # (B, H, 1)
            share = _stable_sigmoid(lse - sink)  # (B, H, L): the keys' share of the denominator with the sink's term
            out = (out.to(lse.dtype) * share[..., None]).to(query.dtype)
            lse = torch.logaddexp(lse, sink)  # (B, H, L): the sink's term joins the denominator
        out = out.reshape(leading + (L, value.shape[-1]))  # (..., L, Ev)
        return (out, lse.reshape(leading + (L,))) if return_lse else out

    return sdpa


sdpa = flex_sdpa()


def backend() -> Backend:
    declaration = Declaration(
        kind="sdpa", dtypes=DTYPES, masked_rows="zeros", causal_alignment="top-left", gqa=True, window=True,
        softcap=True, alibi=True, kv_lengths=True, sinks=True, lse=True, shapes=6,
        conventions=(("layout", "(B, H, L, E), mapped from (..., L, E)"),
                     ("mask polarity", "True = attend (a mask_mod reading the mask); float masks as a score_mod"),
                     ("sinks", "out * sigmoid(lse - sink) after the call (FlexAttention has no sink argument)")),
    )
    return Backend("torch-flex-cpu", sdpa, declaration, FlexAdapter("cpu"),
                   description="torch.nn.attention.flex_attention.flex_attention on cpu, eager (no torch.compile)")
