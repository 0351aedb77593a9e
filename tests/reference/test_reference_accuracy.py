"""Fixed-seed accuracy reports of the reference: worst error against the mpmath oracle and torch.

Each test runs seeded random cases, prints the worst ratio of error to the
forward-error bound of :mod:`reference_helpers` (run pytest with ``-s`` to see the
lines) and fails if that ratio exceeds 1.
"""

from __future__ import annotations

import numpy as np
import torch
from reference_helpers import mha_bound, pe_bound, sdpa_bound, seeded_case

from kqv.reference import attention_weights, multi_head_attention, scaled_dot_product_attention
from kqv.reference import sinusoidal_positional_encoding
from kqv.reference.oracle import oracle_attention_weights, oracle_mha, oracle_pe, oracle_sdpa

CASES = 200


class Worst:
    """The worst ratio to the bound, absolute error and error relative to sum_j p_j |v_j| seen so far."""

    def __init__(self):
        self.ratio = self.absolute = self.relative = 0.0

    def add(self, got, expected, bound, scale=None):
        if got.size == 0:
            return
        error = np.abs(got - expected)
        self.ratio = max(self.ratio, float(np.max(error / bound)))
        self.absolute = max(self.absolute, float(np.max(error)))
        if scale is not None:
            self.relative = max(self.relative, float(np.max(error / np.maximum(scale, np.finfo(float).tiny))))

    def line(self, what, relative=True):
        text = f"worst ratio to bound vs {what}: {self.ratio:.3g} (worst abs error {self.absolute:.3g}"
        return text + (f", worst error / sum_j p_j|v_j| {self.relative:.3g})" if relative else ")")


def test_sdpa_worst_ratio_vs_oracle() -> None:
    rng = np.random.default_rng(20240611)
    worst = Worst()
    for _ in range(CASES):
        case = seeded_case(rng)
        masked_rows = str(rng.choice(["zeros", "uniform"]))
        got = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs(), masked_rows=masked_rows)
        exact = oracle_sdpa(case.query, case.key, case.value, **case.kwargs(), masked_rows=masked_rows)
        weights = oracle_attention_weights(case.broadcast_query(), case.key, **case.kwargs(), masked_rows=masked_rows)
        bound = sdpa_bound(case.query, case.key, case.value, weights, scale=case.scale, additive=case.additive())
        worst.add(got, exact, bound, weights @ np.abs(case.value))
    print(f"\nsdpa, {CASES} seeded cases: " + worst.line("oracle (dps=50)"))
    assert worst.ratio <= 1.0


def test_sdpa_worst_ratio_vs_torch() -> None:
    rng = np.random.default_rng(20240612)
    worst = Worst()
    for _ in range(CASES):
        case = seeded_case(rng, torch_compatible=True)
        got = scaled_dot_product_attention(case.query, case.key, case.value, **case.kwargs())
        expected = torch.nn.functional.scaled_dot_product_attention(
            *(torch.from_numpy(a) for a in (case.query, case.key, case.value)),
            attn_mask=None if case.attn_mask is None else torch.from_numpy(case.attn_mask),
            is_causal=case.is_causal, scale=case.scale).numpy()
        weights = attention_weights(case.broadcast_query(), case.key, **case.kwargs())
        bound = 2 * sdpa_bound(case.query, case.key, case.value, weights, scale=case.scale, additive=case.additive())
        worst.add(got, expected, bound, weights @ np.abs(case.value))
    print(f"\nsdpa, {CASES} seeded cases: " + worst.line(f"torch {torch.__version__} float64 (bound x 2)"))
    assert worst.ratio <= 1.0


def _mha_case(rng):
    heads, d_k, d_v = (int(n) for n in rng.integers(1, 4, size=3))
    d_model = int(rng.integers(1, 7))
    if rng.random() < 0.6:  # the shapes torch.nn.MultiheadAttention supports
        d_v, d_model = d_k, heads * d_k
    B, L, S = int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    args = dict(x_q=rng.standard_normal((B, L, d_model)), x_kv=rng.standard_normal((B, S, d_model)),
                w_q=rng.standard_normal((d_model, heads * d_k)), w_k=rng.standard_normal((d_model, heads * d_k)),
                w_v=rng.standard_normal((d_model, heads * d_v)), w_o=rng.standard_normal((heads * d_v, d_model)),
                b_q=rng.standard_normal(heads * d_k), b_k=rng.standard_normal(heads * d_k),
                b_v=rng.standard_normal(heads * d_v), b_o=rng.standard_normal(d_model))
    mask = rng.random((B, L, S)) < 0.7
    mask[..., 0] = True
    return args, dict(num_heads=heads, attn_mask=mask if rng.random() < 0.5 else None,
                      is_causal=bool(rng.random() < 0.3))


def test_mha_worst_ratio_vs_oracle_and_torch() -> None:
    rng = np.random.default_rng(20240613)
    vs_oracle, vs_torch = Worst(), Worst()
    for _ in range(40):
        args, options = _mha_case(rng)
        got = multi_head_attention(**args, **options)
        bound = mha_bound(**args, **options)
        vs_oracle.add(got, oracle_mha(**args, **options), bound)
        if args["w_q"].shape == (args["x_q"].shape[-1],) * 2 == args["w_v"].shape and not options["is_causal"]:
            d = args["x_q"].shape[-1]
            module = torch.nn.MultiheadAttention(d, options["num_heads"], batch_first=True, dtype=torch.float64)
            with torch.no_grad():
                module.in_proj_weight.copy_(torch.from_numpy(np.concatenate([args[w].T for w in ("w_q", "w_k", "w_v")])))
                module.in_proj_bias.copy_(torch.from_numpy(np.concatenate([args[b] for b in ("b_q", "b_k", "b_v")])))
                module.out_proj.weight.copy_(torch.from_numpy(args["w_o"].T))
                module.out_proj.bias.copy_(torch.from_numpy(args["b_o"]))
                mask = options["attn_mask"]
                if mask is not None:  # torch: (B * num_heads, L, S), True = NOT allowed
                    mask = torch.from_numpy(~np.repeat(mask, options["num_heads"], axis=0))
                x_q, x_kv = torch.from_numpy(args["x_q"]), torch.from_numpy(args["x_kv"])
                expected = module(x_q, x_kv, x_kv, attn_mask=mask, need_weights=False)[0].numpy()
            vs_torch.add(got, expected, 2 * bound)
    print("\nmha, 40 seeded cases: " + vs_oracle.line("oracle (dps=50)", relative=False))
    print("mha: " + vs_torch.line("torch.nn.MultiheadAttention (bound x 2)", relative=False))
    assert vs_oracle.ratio <= 1.0 and vs_torch.ratio <= 1.0
    assert vs_torch.absolute > 0  # torch cases did run


def test_pe_worst_ratio_vs_oracle() -> None:
    worst = Worst()
    for length, d_model, base in [(64, 16, 10000.0), (33, 7, 10000.0), (200, 4, 10000.0), (50, 9, 10.0),
                                  (20, 5, 1e6)]:
        got = sinusoidal_positional_encoding(length, d_model, base=base)
        worst.add(got, oracle_pe(length, d_model, base=base), pe_bound(length, d_model, base))
    print("\npe: " + worst.line("oracle (dps=50)", relative=False))
    assert worst.ratio <= 1.0
