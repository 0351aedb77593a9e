"""ONNX's golden ``Attention`` cases replayed through the float64 reference.

The onnx wheel ships test cases for its ``Attention`` operator (opsets 23 to 25), made by
``onnx/backend/test/case/node/attention.py``: inputs, and the outputs of ``onnx.reference``
(``op_attention.py``) computed in the inputs' dtype. Each is recomputed by
:func:`kqv.reference.scaled_dot_product_attention` in float64 on the stored inputs and must agree
within the precision of the stored outputs. The ``_expanded`` twins are skipped: the same
computation written as a function body, with the same stored inputs and outputs.

3-D inputs ``(B, L, H*E)`` with ``q_num_heads``/``kv_num_heads`` are split into ``(B, H, L, E)``
and the output merged back; ``H_q != H_kv`` is ``enable_gqa`` (both repeat-interleave). ``scale``
is passed as is (ONNX multiplies Q and K by ``sqrt(scale)`` in the input dtype: a rounding).
``softcap=0`` is no cap; ONNX caps before any bias or mask, as the spec does. Masks: bool True =
the key takes part, float = added; rank 1 to 4, broadcast from the right (a rank-3 mask is
``(H, L, S)``), as in the spec; one shorter than the keys is padded with False / ``-inf``, as ONNX
does. ``softmax_precision`` is ignored: the reference computes in float64.

Past key/value: concatenated before the new key/value on the sequence axis; ``present_key``/
``present_value`` are that concatenation, checked exactly. ONNX puts the causal rule and the window
at the offset ``o`` = the past length P (0 without a past): key j is kept iff ``j <= i + o`` and
``i + o - left <= j <= i + o + right`` (``-1`` = unbounded). ``o = 0`` is ``causal_alignment=
"top-left"``, ``o = S - L`` is ``"bottom-right"``; but ``P = S - L`` only when the new key block is
as long as the query block. Otherwise the same keys are the spec's window rule with its sides
shifted by ``d = o - a`` (``a = S - L``, else 0): ``(left - d, right + d)``, causal being ``right = 0``.

``nonpad_kv_seqlen``: keys ``j >= len[b]`` are masked and the causal rule and window sit at the
offset ``len[b] - L`` of each batch entry (not clamped): the reference's ``kv_lengths=`` with the
bottom-right alignment (clauses ``lengths.index-rule``, ``lengths.offset``).

``qk_matmul_output_mode`` (schema and op_attention.py): 0 the scores ``s Q K^T``; 1 the scores after
the softcap; 2 after the softcap, the biases and every mask (``-inf`` where a key is dropped),
:func:`masked_scores`; 3 the softmax weights, :func:`weights_of`. Mode 0 with a softcap is unmapped:
the schema says raw scores, op_attention.py returns capped ones (no case has it).

Rows that keep no key: ONNX zeroes the weights of a row whose bias is ``-inf`` everywhere, so that
row of Y and of the mode-3 weights is 0: ``masked_rows="zeros"``, the reference's default.
An attribute, input, output, mode or dtype the mapping does not know raises :class:`Unmapped`,
which fails its case and :func:`test_every_case_is_mapped`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from kqv.reference import scaled_dot_product_attention  # noqa: E402
from kqv.reference.prepare import prepare  # noqa: E402
from kqv.reference.sdpa import masked_scores, weights_of  # noqa: E402
from kqv.reference.stages import scores, soft_cap  # noqa: E402

INPUTS = ("Q", "K", "V", "attn_mask", "past_key", "past_value", "nonpad_kv_seqlen")
OUTPUTS = ("Y", "present_key", "present_value", "qk_matmul_output")
ATTRIBUTES = {"is_causal", "scale", "q_num_heads", "kv_num_heads", "softcap", "qk_matmul_output_mode",
              "softmax_precision", "left_window_size", "right_window_size"}
WINDOW = ("left_window_size", "right_window_size")
U = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}  # unit roundoff of the stored outputs
# The bound is K u (|ref| + m): m = P|V| for Y, s|Q||K|^T (+ |M|, mode 2) for scores, P max_j(s|Q||K|^T) for
# weights. K covers the output's rounding (1) and the generator's compute in the stored dtype. Its first-order
# worst case is tens (E = 8 products and S <= 18 terms rounded, score errors moving the weights); the errors
# partly cancel: measured once over the shipped data (every generator seeded 0) and 30 regenerations with other
# seeds, the worst is 3.7 (Y, float32), 2.9 (weights), 2.3 (scores), 1.4 (bfloat16), 1.1 (float16). K = 8.
K = 8.0


class Unmapped(Exception):
    """A part of an ONNX case the mapping to the reference does not know."""


def golden_cases() -> dict:
    """The non-expanded Attention cases by name; other operators' generators warn (log, divide, cast): hushed."""
    state = np.random.get_state()  # the generators seed numpy's global generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from onnx.backend.test.case.node import collect_testcases
        cases = collect_testcases("Attention")
    np.random.set_state(state)
    return {case.name: case for case in cases if not case.name.endswith("_expanded")}


CASES = golden_cases()


def named(names, arrays, known: tuple, what: str) -> dict:
    """ONNX passes inputs/outputs by position, an empty name for one left out; the data sets hold the others."""
    if len(names) > len(known):
        raise Unmapped(f"{what} {list(names)[len(known):]}: the mapping knows {known}")
    arrays = iter(arrays)
    return {known[at]: next(arrays) for at, name in enumerate(names) if name}


def split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    B, L, width = x.shape
    return x.reshape(B, L, heads, width // heads).transpose(0, 2, 1, 3)  # (B, L, H, E) -> (B, H, L, E)


def merge_heads(x: np.ndarray) -> np.ndarray:
    B, H, L, Ev = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, L, H * Ev)  # (B, H, L, Ev) -> (B, L, H, Ev) -> (B, L, H*Ev)


def padded(mask: np.ndarray, S: int) -> np.ndarray:
    """A mask shorter than the S keys, padded as ONNX pads it: False / -inf."""
    fill = False if mask.dtype == np.bool_ else -np.inf
    return np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, S - mask.shape[-1])], constant_values=fill)


def window_of(attrs: dict) -> tuple | None:
    """ONNX's window as ``(left, right)``, a side -1 (the default) unbounded: None; None if both are."""
    window = tuple(None if attrs.get(side, -1) == -1 else attrs[side] for side in WINDOW)
    return None if window == (None, None) else window


def sides(attrs: dict) -> tuple:
    """ONNX's causal rule and window as one window ``(left, right)`` at its offset, None unbounded."""
    left, right = window_of(attrs) or (None, None)
    if attrs.get("is_causal", 0):
        right = 0 if right is None else min(right, 0)  # the causal rule is right = 0
    return left, right


def alignment(attrs: dict, past: int, L: int, S: int) -> dict:
    """The keywords for ONNX's causal rule and window at the offset ``past`` (module docstring)."""
    causal, window, (left, right) = bool(attrs.get("is_causal", 0)), window_of(attrs), sides(attrs)
    if not causal and window is None:
        return {}
    order = (("bottom-right", S - L), ("top-left", 0)) if past else (("top-left", 0), ("bottom-right", S - L))
    for name, offset in order:
        if past == offset:
            return dict(is_causal=causal, window=window, causal_alignment=name)
    for name, offset in order:
        d = past - offset
        shifted = (None if left is None else left - d, None if right is None else right + d)
        if all(side is None or side >= 0 for side in shifted):
            return dict(window=shifted, causal_alignment=name)
    raise Unmapped(f"causal/window offset {past} (the past length), window {(left, right)}: neither 0 nor "
                   f"S - L = {S - L}, nor a shifted window; the spec has no causal offset keyword")


def replay(inputs: dict, attrs: dict, wanted) -> dict:
    """The reference's outputs by ONNX output name, each with the magnitude m of its bound (None: exact)."""
    if set(attrs) - ATTRIBUTES:
        raise Unmapped(f"attributes {sorted(set(attrs) - ATTRIBUTES)}: the mapping knows {sorted(ATTRIBUTES)}")
    if ("past_key" in inputs) != ("past_value" in inputs):
        raise Unmapped("past_key and past_value come together")
    query, key, value = (inputs[name] for name in "QKV")
    if query.ndim == 3:
        query = split_heads(query, attrs["q_num_heads"])  # (B, Hq, L, E)
        key, value = (split_heads(x, attrs["kv_num_heads"]) for x in (key, value))  # (B, Hkv, S, E|Ev)
    elif {"q_num_heads", "kv_num_heads"} & set(attrs):
        raise Unmapped("q_num_heads/kv_num_heads with 4-D inputs")
    past = inputs["past_key"].shape[2] if "past_key" in inputs else 0
    if past:
        key = np.concatenate([inputs["past_key"], key], axis=2)  # (B, Hkv, P + S_new, E)
        value = np.concatenate([inputs["past_value"], value], axis=2)  # (B, Hkv, P + S_new, Ev)
    (L, S), mask = (query.shape[2], key.shape[2]), inputs.get("attn_mask")
    mask = None if mask is None else padded(mask if mask.dtype == np.bool_ else mask.astype(np.float64), S)
    placement = {}
    if "nonpad_kv_seqlen" in inputs:
        if past:
            raise Unmapped("nonpad_kv_seqlen with past_key (ONNX forbids it): kv_lengths= does not cover it")
        placement = dict(kv_lengths=inputs["nonpad_kv_seqlen"], is_causal=bool(attrs.get("is_causal", 0)),
                         window=window_of(attrs), causal_alignment="bottom-right")  # offset len[b] - L per entry
    else:
        placement = alignment(attrs, past, L, S)
    cap = attrs.get("softcap", 0.0) or None
    kwargs = dict(attn_mask=mask, scale=attrs.get("scale"), enable_gqa=query.shape[1] != key.shape[1], softcap=cap,
                  masked_rows="zeros", **placement)
    call = prepare(*(x.astype(np.float64) for x in (query, key, value)), **kwargs)
    weights = weights_of(call)[0]  # (B, Hq, L, S)
    y = scaled_dot_product_attention(query, key, value, **kwargs)  # (B, Hq, L, Ev)
    row = weights @ np.abs(call.value)  # (B, Hq, L, Ev): the weighted mean of |V|
    out = {"Y": (y, row) if inputs["Q"].ndim == 4 else (merge_heads(y), merge_heads(row)),
           "present_key": (key, None), "present_value": (value, None)}
    mode = attrs.get("qk_matmul_output_mode", 0)
    if "qk_matmul_output" not in wanted:  # the mode is read only with the output it selects
        return out
    if mode == 0 and cap is not None:
        raise Unmapped("qk_matmul_output_mode=0 with softcap: the schema says raw scores, op_attention.py capped")
    stages = {0: lambda: scores(call.query, call.key, call.scale),
              1: lambda: soft_cap(scores(call.query, call.key, call.scale), cap),
              2: lambda: masked_scores(call), 3: lambda: weights}
    if mode not in stages:
        raise Unmapped(f"qk_matmul_output_mode={mode}: the mapping knows {sorted(stages)}")
    size = scores(np.abs(call.query), np.abs(call.key), abs(call.scale))  # s|Q||K|^T, (B, Hq, L, S)
    size = size + np.abs(call.biases()) if mode == 2 else size  # + |M| once the biases are added
    out["qk_matmul_output"] = (stages[mode](), weights * size.max(axis=-1, keepdims=True) if mode == 3 else size)
    return out


def ratio(reference: np.ndarray, stored: np.ndarray, magnitude: np.ndarray, u: float) -> tuple:
    """``(|ref - onnx| / bound, bound)``, bound ``K u (|ref| + m)``; infinities must be equal (else inf)."""
    stored = np.asarray(stored, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf
        error = np.where(reference == stored, 0.0, np.abs(reference - stored))  # equal infinities: 0
    bound = K * u * (np.abs(np.where(np.isinf(reference), 0, reference)) + magnitude)
    return np.divide(error, bound, out=np.where(error > 0, np.inf, 0.0), where=bound > 0), bound


def check(case) -> list[str]:
    """Every data set of ``case`` replayed; the messages of the outputs that disagree."""
    node = case.model.graph.node
    if len(node) != 1 or node[0].op_type != "Attention":
        raise Unmapped(f"expected one Attention node, got {[n.op_type for n in node]}")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node[0].attribute}
    failures = []
    for inputs, outputs in case.data_sets:
        inputs = named(node[0].input, inputs, INPUTS, "inputs")
        outputs = named(node[0].output, outputs, OUTPUTS, "outputs")
        ours = replay(inputs, attrs, outputs)
        for name, stored in outputs.items():
            reference, magnitude = ours[name]
            if stored.dtype.name not in U:
                raise Unmapped(f"{name} dtype {stored.dtype}: the mapping knows {sorted(U)}")
            if reference.shape != stored.shape:
                failures.append(f"{case.name}: {name} shape {stored.shape}, the reference's {reference.shape}")
            elif magnitude is None:  # the cache: exactly the concatenation
                if not np.array_equal(reference.astype(np.float64), stored.astype(np.float64)):
                    failures.append(f"{case.name}: {name} is not the concatenation of the past and the new")
            else:
                r, bound = ratio(reference, stored, magnitude, U[stored.dtype.name])
                at = np.unravel_index(np.argmax(r), r.shape)
                if r[at] > 1:
                    failures.append(f"{case.name}: {name} ({stored.dtype}) worst element {tuple(map(int, at))}: "
                                    f"reference {float(reference[at])!r}, ONNX {float(stored[at])!r}, "
                                    f"{r[at]:.3g} x the bound K u (|ref| + m) = {bound[at]:.3g}, K={K}")
    return failures


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_golden_case(name: str) -> None:
    try:
        failures = check(CASES[name])
    except Unmapped as error:
        pytest.fail(f"{name}: unmapped: {error}")
    assert not failures, "\n".join(failures)


def test_every_case_is_mapped() -> None:
    unmapped = []
    for name, case in sorted(CASES.items()):
        try:
            check(case)
        except Unmapped as error:  # each attribute, input, output, mode and dtype is mapped or named here
            unmapped.append(f"{name}: {error}")
    assert CASES and not unmapped, "cases the mapping does not know:\n" + "\n".join(unmapped or ["(no case)"])
