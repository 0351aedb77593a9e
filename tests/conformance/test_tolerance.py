"""The tolerance model (clause ``attention.accuracy``): sound against the exact result, and tight
enough to catch an implementation that computes in a lower precision than its dtype."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kqv.conformance.kinds.sdpa.bound import sdpa_expectation
from kqv.conformance.kinds.sdpa.case import SdpaCase
from kqv.conformance.compare import mismatch
from kqv.conformance.dtypes import SMALLEST_NORMAL, UNDERFLOW, UNIT_ROUNDOFF, as_float64, round_to
from kqv.conformance.tolerance import Precision
from kqv.reference import scaled_dot_product_attention
from kqv.reference.oracle import oracle_sdpa

torch = pytest.importorskip("torch")
TORCH = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _cases(dtype: str, count: int, **fields):
    rng = np.random.default_rng(11)
    for n in range(count):
        L, S, E, Ev = (int(x) for x in rng.integers(1, 9, size=4))
        yield SdpaCase(dtype=dtype, batch=(2,), L=L, S=S, E=E, Ev=Ev, seed=n,
                       values=str(rng.choice(["normal", "large", "ties", "far-apart", "tiny-values"])),
                       mask=str(rng.choice(["none", "bool", "float"])), **fields)


def _torch_sdpa(inputs, dtype):
    q, k, v = (torch.from_numpy(as_float64(a)).to(TORCH[dtype]) for a in (inputs.query, inputs.key, inputs.value))
    mask = inputs.attn_mask
    if mask is not None:
        mask = torch.from_numpy(mask) if mask.dtype == np.bool_ else torch.from_numpy(as_float64(mask)).to(TORCH[dtype])
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).to(torch.float64).numpy()


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_torch_is_within_the_bound_of_the_exact_result(dtype: str) -> None:
    """The exact result (mpmath, 50 digits) on the rounded inputs is the yardstick here, not the reference."""
    worst = 0.0
    for case in _cases(dtype, 25):
        inputs = case.build()
        judged = sdpa_expectation(inputs, Precision.of(dtype))
        exact = oracle_sdpa(*(as_float64(a) for a in (inputs.query, inputs.key, inputs.value)),
                            attn_mask=None if inputs.attn_mask is None else (
                                inputs.attn_mask if inputs.attn_mask.dtype == np.bool_ else as_float64(inputs.attn_mask)))
        got = _torch_sdpa(inputs, dtype)
        assert mismatch(got, exact, judged.bound) is None, case
        worst = max(worst, float(np.max(np.abs(got - exact) / np.maximum(judged.bound, 1e-300))))
    assert worst > 0  # the comparison measured something


def _lowered(inputs, dtype, inner):
    """The reference computed on inputs rounded to ``inner``, returned in ``dtype``: a lower-precision kernel."""
    low = [round_to(as_float64(a), inner) for a in (inputs.query, inputs.key, inputs.value)]
    out = scaled_dot_product_attention(*low, attn_mask=inputs.attn_mask)
    return as_float64(round_to(round_to(out, inner).astype(np.float64), dtype))


@pytest.mark.parametrize(("dtype", "inner"), [("float64", "float32"), ("float32", "float16"),
                                              ("float32", "bfloat16")])
def test_computing_in_a_lower_precision_is_caught(dtype: str, inner: str) -> None:
    # (A float16 backend working in bfloat16 is not told apart from one that stores its scores in
    # float16, which the model allows: docs/error-model.md, "What the bound cannot see".)
    caught = 0
    for case in _cases(dtype, 20):
        case = dataclasses.replace(case, values="normal", mask="none")
        inputs = case.build()
        judged = sdpa_expectation(inputs, Precision.of(dtype))
        caught += mismatch(_lowered(inputs, dtype, inner), judged.expected, judged.bound) is not None
    assert caught >= 15, f"only {caught} of 20 cases caught a {dtype} backend computing in {inner}"


def test_the_float64_bound_is_a_few_hundred_ulps_on_ordinary_data() -> None:
    case = SdpaCase(dtype="float64", batch=(2, 2), L=16, S=16, E=16, Ev=16, seed=1)
    judged = sdpa_expectation(case.build(), Precision.of("float64"))
    mass = judged.weights @ np.abs(case.build().value)
    assert np.max(judged.bound / mass) < 1000 * 2.0**-53


def test_half_precision_accumulating_in_its_own_dtype_gets_a_wider_bound() -> None:
    inputs = SdpaCase(dtype="float16", L=4, S=64, E=64, Ev=4, seed=2).build()
    wide = sdpa_expectation(inputs, Precision.of("float16", "dtype")).bound
    narrow = sdpa_expectation(inputs, Precision.of("float16", "float32")).bound
    assert np.all(wide > 4 * narrow)


def test_fully_masked_rows_follow_the_convention_asked() -> None:
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False
    case = SdpaCase(dtype="float32", L=3, S=4, E=2, Ev=2, seed=0)
    inputs = case.build().replace(attn_mask=mask)
    value = as_float64(inputs.value)
    zeros, nan, uniform = (sdpa_expectation(inputs, Precision.of("float32"), masked_rows=c)
                           for c in ("zeros", "nan", "uniform"))
    assert (zeros.expected[1] == 0).all() and (zeros.bound[1] == 0).all()
    assert np.isnan(nan.expected[1]).all()
    assert np.allclose(uniform.expected[1], value.mean(axis=0), rtol=0, atol=1e-15)
    assert (uniform.bound[1] > 0).all() and (uniform.bound[1] < 1e-5).all()
    assert zeros.empty.tolist() == [False, True, False]


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_a_row_whose_weights_all_underflow_under_a_sink_gets_a_finite_bound(dtype: str) -> None:
    # The sink (0) sits far above the only score (about -1e5): every weight underflows, the output is 0, and the
    # exponent error of the row overflows expm1; the bound must stay finite (it was inf * 0 = NaN).
    query, key = np.full((2, 1, 1), 300.0), np.full((2, 1, 1), -300.0)  # (H, L, E), (H, S, E): score -9e4
    value = np.array([[[-0.5]], [[0.25]]])  # (H, S, Ev)
    inputs = SdpaCase(dtype=dtype).build().replace(query=round_to(query, dtype), key=round_to(key, dtype),
                                                   value=round_to(value, dtype), variants=(("sinks", (0.0, 0.0)),))
    judged = sdpa_expectation(inputs, Precision.of(dtype))
    assert np.isfinite(judged.bound).all(), judged.bound
    assert mismatch(np.zeros((2, 1, 1)), judged.expected, judged.bound) is None
    assert mismatch(np.full((2, 1, 1), 0.1), judged.expected, judged.bound) is not None


def test_every_dtype_has_an_underflow_allowance() -> None:
    # 2.0**-1075, half float64's subnormal spacing, is itself 0.0 in float64: the float64 bound had no allowance.
    for dtype, tiny in UNDERFLOW.items():
        smallest_subnormal = 2.0 ** (np.log2(SMALLEST_NORMAL[dtype]) - (-np.log2(UNIT_ROUNDOFF[dtype]) - 1))
        assert tiny > 0 and tiny >= smallest_subnormal / 2, (dtype, tiny)


def test_a_float64_output_that_rounds_into_the_subnormals_may_take_either_neighbour() -> None:
    # Two equal weights average the values 3 and 0 times the smallest subnormal: the exact output, 1.5 of it,
    # lies halfway between two float64 numbers, and a kernel may round to either.
    subnormal = 2.0**-1074
    value = np.array([[[3 * subnormal], [0.0]]])  # (H, S, Ev)
    inputs = SdpaCase(dtype="float64").build().replace(query=np.zeros((1, 1, 1)), key=np.zeros((1, 2, 1)), value=value)
    judged = sdpa_expectation(inputs, Precision.of("float64"))
    for neighbour in (subnormal, 2 * subnormal):
        assert mismatch(np.full((1, 1, 1), neighbour), judged.expected, judged.bound) is None, neighbour
    assert mismatch(np.full((1, 1, 1), 1e-300), judged.expected, judged.bound) is not None
