"""kqv.reference.validation: every bad input is refused with a message naming the argument and the shapes."""

from __future__ import annotations

import numpy as np
import pytest

from kqv.reference import (attention_weights, causal_mask, multi_head_attention, scaled_dot_product_attention,
                           sinusoidal_positional_encoding)
from kqv.reference.oracle import oracle_mha, oracle_pe, oracle_sdpa

sdpa_functions = pytest.mark.parametrize("sdpa", [scaled_dot_product_attention, oracle_sdpa])


def _qkv(q=(2, 4, 8), k=(2, 5, 8), v=(2, 5, 3)):
    return np.zeros(q), np.zeros(k), np.zeros(v)


@sdpa_functions
@pytest.mark.parametrize("shapes, error", [
    (((2, 4, 8), (2, 5, 7), (2, 5, 3)),
     r"key: expected shape \(\.\.\., S, 8\) with E=8 matching query's last dim, got \(2, 5, 7\)"),
    (((2, 4, 8), (2, 5, 8), (2, 6, 3)),
     r"value: expected shape \(\.\.\., 5, Ev\) with S=5 matching key's second-to-last dim, got \(2, 6, 3\)"),
    (((2, 4, 8), (3, 5, 8), (2, 5, 3)),
     r"query, key and value: batch dims \(2,\), \(3,\) and \(2,\) do not broadcast "
     r"\(query \(2, 4, 8\), key \(3, 5, 8\), value \(2, 5, 3\)\)"),
    (((8,), (5, 8), (5, 3)), r"query: expected shape \(\.\.\., L, E\) with at least 2 dims, got shape \(8,\)"),
    (((4, 8), (8,), (5, 3)), r"key: expected shape \(\.\.\., S, E\) with at least 2 dims, got shape \(8,\)"),
    (((4, 8), (5, 8), (3,)), r"value: expected shape \(\.\.\., S, Ev\) with at least 2 dims, got shape \(3,\)"),
])
def test_shape_mismatches(sdpa, shapes, error) -> None:
    with pytest.raises(ValueError, match=error):
        sdpa(*_qkv(*shapes))


@sdpa_functions
@pytest.mark.parametrize("mask_shape", [(4, 6), (3, 4, 5), (2, 2, 4, 5), (5, 4)])
def test_mask_not_broadcastable(sdpa, mask_shape) -> None:
    target = r"\(2, 4, 5\)"
    shape = str(mask_shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=rf"attn_mask: shape {shape} does not broadcast to \(\.\.\., L, S\) = {target}"):
        sdpa(*_qkv(), attn_mask=np.ones(mask_shape, dtype=bool))


@sdpa_functions
@pytest.mark.parametrize("dtype", ["int64", "int8", "uint8", "complex128"])
def test_mask_of_unsupported_dtype(sdpa, dtype) -> None:
    with pytest.raises(TypeError, match=rf"attn_mask: expected bool .* or floating .* dtype, got {dtype}"):
        sdpa(*_qkv(), attn_mask=np.ones((4, 5), dtype=dtype))


@sdpa_functions
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_mask_with_nan_or_plus_inf(sdpa, bad) -> None:
    mask = np.zeros((4, 5))
    mask[1, 2] = bad
    with pytest.raises(ValueError, match=r"attn_mask: a floating mask holds finite values or -inf, got .* at index \(1, 2\)"):
        sdpa(*_qkv(), attn_mask=mask)


@sdpa_functions
@pytest.mark.parametrize("name", ["query", "key", "value"])
@pytest.mark.parametrize("dtype", ["int64", "bool", "complex128", "object"])
def test_non_floating_inputs(sdpa, name, dtype) -> None:
    arrays = dict(zip(("query", "key", "value"), _qkv()))
    arrays[name] = arrays[name].astype(dtype)
    with pytest.raises(TypeError, match=rf"{name}: expected a floating dtype .*, got {dtype}"):
        sdpa(**arrays)


@sdpa_functions
@pytest.mark.parametrize("scale", [np.inf, -np.inf, np.nan])
def test_non_finite_scale(sdpa, scale) -> None:
    with pytest.raises(ValueError, match=r"scale: expected a finite real number or None, got (inf|-inf|nan)"):
        sdpa(*_qkv(), scale=scale)


def test_scale_of_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"scale: expected a finite real number or None, got '1'"):
        scaled_dot_product_attention(*_qkv(), scale="1")


def test_default_scale_undefined_for_e_zero() -> None:
    with pytest.raises(ValueError, match=r"scale: the default 1/sqrt\(E\) is undefined for E=0"):
        scaled_dot_product_attention(*_qkv((4, 0), (5, 0), (5, 3)))
    np.testing.assert_array_equal(scaled_dot_product_attention(*_qkv((4, 0), (5, 0), (5, 3)), scale=1.0),
                                  np.zeros((4, 3)))


@pytest.mark.parametrize("dropout_p, shown", [(0.1, "0.1"), (1, "1"), (-0.5, "-0.5")])
def test_dropout_must_be_zero(dropout_p, shown) -> None:
    with pytest.raises(ValueError, match=rf"dropout_p must be 0\.0: the reference is deterministic; got {shown}$"):
        scaled_dot_product_attention(*_qkv(), dropout_p=dropout_p)
    scaled_dot_product_attention(*_qkv(), dropout_p=0)  # 0 and 0.0 are accepted


@sdpa_functions
def test_unknown_options_list_the_valid_ones(sdpa) -> None:
    with pytest.raises(ValueError, match=r"causal_alignment: expected one of 'top-left', 'bottom-right', got 'center'"):
        sdpa(*_qkv(), is_causal=True, causal_alignment="center")
    with pytest.raises(ValueError, match=r"masked_rows: expected one of 'zeros', 'nan', 'uniform', got 'skip'"):
        sdpa(*_qkv(), masked_rows="skip")
    with pytest.raises(TypeError, match=r"is_causal: expected a bool, got 'yes'"):
        sdpa(*_qkv(), is_causal="yes")


def test_attention_weights_checks_like_sdpa() -> None:
    with pytest.raises(ValueError, match=r"key: expected shape \(\.\.\., S, 8\) with E=8"):
        attention_weights(np.zeros((4, 8)), np.zeros((5, 7)))
    with pytest.raises(ValueError, match=r"alignment: expected one of 'top-left', 'bottom-right', got 'top-right'"):
        causal_mask(2, 3, "top-right")
    with pytest.raises(ValueError, match=r"L: expected an integer >= 0, got -1"):
        causal_mask(-1, 3)


# --------------------------------------------------------------------------- multi-head attention


def _mha_args(B=2, L=3, S=4, d_model=8, width_qk=8, width_v=8, d_out=8):
    return dict(x_q=np.zeros((B, L, d_model)), x_kv=np.zeros((B, S, d_model)), w_q=np.zeros((d_model, width_qk)),
                w_k=np.zeros((d_model, width_qk)), w_v=np.zeros((d_model, width_v)), w_o=np.zeros((width_v, d_out)))


@pytest.mark.parametrize("mha", [multi_head_attention, oracle_mha])
@pytest.mark.parametrize("change, num_heads, error_type, error", [
    (dict(), 3, ValueError, r"num_heads: 3 does not divide w_q's width 8 \(expected num_heads \* d_k columns\)"),
    (dict(width_v=6, d_out=8), 4, ValueError, r"num_heads: 4 does not divide w_v's width 6"),
    (dict(), 0, ValueError, r"num_heads: expected an integer >= 1, got 0"),
    (dict(), -2, ValueError, r"num_heads: expected an integer >= 1, got -2"),
    (dict(), 2.0, ValueError, r"num_heads: expected an integer >= 1, got 2\.0"),
    (dict(d_out=7), 2, ValueError, r"w_o: expected shape \(8, 8\) = \(num_heads \* d_v, d_model\), got \(8, 7\)"),
])
def test_mha_head_and_weight_errors(mha, change, num_heads, error_type, error) -> None:
    with pytest.raises(error_type, match=error):
        mha(**_mha_args(**change), num_heads=num_heads)


@pytest.mark.parametrize("mha", [multi_head_attention, oracle_mha])
def test_mha_shape_errors(mha) -> None:
    args = _mha_args()
    with pytest.raises(ValueError, match=r"x_kv: expected shape \(2, S, 8\) = \(B, S, d_model\) matching x_q "
                                         r"\(2, 3, 8\), got \(2, 4, 6\)"):
        mha(**{**args, "x_kv": np.zeros((2, 4, 6))}, num_heads=2)
    with pytest.raises(ValueError, match=r"x_kv: expected shape \(2, S, 8\) .* got \(3, 4, 8\)"):
        mha(**{**args, "x_kv": np.zeros((3, 4, 8))}, num_heads=2)
    with pytest.raises(ValueError, match=r"x_q: expected shape \(B, L, d_model\) or \(L, d_model\), got \(8,\)"):
        mha(**{**args, "x_q": np.zeros(8)}, num_heads=2)
    with pytest.raises(ValueError, match=r"w_q: expected shape \(8, 6\) = \(d_model, num_heads \* d_k\), got \(6, 6\)"):
        mha(**{**args, "w_q": np.zeros((6, 6))}, num_heads=2)
    with pytest.raises(ValueError, match=r"w_k: expected shape \(8, 8\) = \(d_model, num_heads \* d_k\) like w_q, "
                                         r"got \(8, 4\)"):
        mha(**{**args, "w_k": np.zeros((8, 4))}, num_heads=2)
    with pytest.raises(ValueError, match=r"b_q: expected shape \(8,\), got \(4,\)"):
        mha(**args, b_q=np.zeros(4), num_heads=2)
    with pytest.raises(ValueError, match=r"b_o: expected shape \(8,\), got \(1, 8\)"):
        mha(**args, b_o=np.zeros((1, 8)), num_heads=2)
    with pytest.raises(ValueError, match=r"attn_mask: expected shape \(2, 3, 4\) = \(B, L, S\), \(1, 3, 4\) or "
                                         r"\(3, 4\), got \(3, 5\)"):
        mha(**args, attn_mask=np.ones((3, 5), dtype=bool), num_heads=2)
    with pytest.raises(TypeError, match=r"attn_mask: expected bool .* got int64"):
        mha(**args, attn_mask=np.ones((3, 4), dtype=np.int64), num_heads=2)
    with pytest.raises(TypeError, match=r"w_v: expected a floating dtype .*, got int64"):
        mha(**{**args, "w_v": np.zeros((8, 8), dtype=np.int64)}, num_heads=2)


# --------------------------------------------------------------------------- positional encoding


@pytest.mark.parametrize("pe", [sinusoidal_positional_encoding, oracle_pe])
@pytest.mark.parametrize("length, d_model, error", [
    (-1, 4, r"length: expected an integer >= 0, got -1"),
    (2.5, 4, r"length: expected an integer >= 0, got 2\.5"),
    (3.0, 4, r"length: expected an integer >= 0, got 3\.0"),
    (True, 4, r"length: expected an integer >= 0, got True"),
    (3, 0, r"d_model: expected an integer >= 1, got 0"),
    (3, -4, r"d_model: expected an integer >= 1, got -4"),
    (3, 4.0, r"d_model: expected an integer >= 1, got 4\.0"),
])
def test_pe_errors(pe, length, d_model, error) -> None:
    with pytest.raises(ValueError, match=error):
        pe(length, d_model)


@pytest.mark.parametrize("base", [0, -10.0, np.inf, np.nan])
def test_pe_base_errors(base) -> None:
    with pytest.raises(ValueError, match=r"base: expected a finite real number > 0"):
        sinusoidal_positional_encoding(3, 4, base=base)
