"""The analytic backward of the reference against torch.autograd at float64.

Two forwards are differentiated by autograd: ``torch.nn.functional.scaled_dot_product_attention`` for the options it
has (masks, top-left causal, scale, GQA; its fully masked rows are zeros), and for every option a forward written
here in torch from the reference's keep-mask and biases (which are constants of the scores): ``softmax(c tanh(s Q
K^T / c) + bias)``, ``-inf`` where a key is dropped, a sink as one more column of the softmax. Both are float64
computations of the exact gradients, so each is within the bound of ``backward_helpers.backward_bound`` of them and
the two within twice it of each other.
"""

from __future__ import annotations

import numpy as np
import pytest
from backward_helpers import GradCase, backward_bound, grad_cases

from kqv.conformance.compare import mismatch
from kqv.reference import scaled_dot_product_attention_backward
from kqv.reference.prepare import prepare

torch = pytest.importorskip("torch")
F = torch.nn.functional

CASES = grad_cases()
TORCH_OPTIONS = {"attn_mask", "is_causal", "scale", "enable_gqa"}


def _ours(case: GradCase):
    call = case.with_inputs()
    return scaled_dot_product_attention_backward(call.pop("query"), call.pop("key"), call.pop("value"),
                                                 case.grad_output, **call)


def _autograd(case: GradCase, forward) -> dict[str, np.ndarray]:
    """The gradients autograd gives ``forward`` (tensors by input name -> output) for ``dO``, by input name."""
    tensors = {name: torch.tensor(array, requires_grad=True) for name, array in case.inputs().items()}
    output = forward(**tensors)
    grads = torch.autograd.grad(output, list(tensors.values()), torch.tensor(case.grad_output))
    return {name: grad.numpy() for name, grad in zip(tensors, grads)}


def _torch_sdpa(case: GradCase):
    options = dict(case.options)
    if options.get("attn_mask") is not None:
        options["attn_mask"] = torch.tensor(options["attn_mask"])
    return lambda query, key, value: F.scaled_dot_product_attention(query, key, value, **options)


def _written_out(case: GradCase):
    """The forward in torch, with the keep-mask and biases of the reference's validated call."""
    call = prepare(case.query, case.key, case.value, **case.options)
    kept, biases = torch.tensor(call.kept()), torch.tensor(call.biases())  # (*batch, L, S)
    empty = ~kept.any(dim=-1, keepdim=True)  # (*batch, L, 1)
    S = call.S

    def forward(query, key, value, sinks=None):
        if case.options.get("enable_gqa"):
            group = query.shape[-3] // key.shape[-3]
            key, value = key.repeat_interleave(group, -3), value.repeat_interleave(group, -3)  # (..., H_q, S, .)
        x = call.scale * query @ key.transpose(-1, -2)  # (..., L, S)
        if call.softcap is not None:
            x = call.softcap * torch.tanh(x / call.softcap)
        x = torch.where(kept, x + biases, -torch.inf)
        x = torch.where(empty, 0.0, x)  # no 0/0 to differentiate on a row that keeps no key
        if sinks is not None:
            column = sinks[..., None, None].expand(*x.shape[:-1], 1)  # (*batch, L, 1)
            weights = torch.softmax(torch.cat([x, column], dim=-1), dim=-1)[..., :S]  # (*batch, L, S)
        else:
            weights = torch.softmax(x, dim=-1)
        fill = 1.0 / S if call.masked_rows == "uniform" else 0.0
        return torch.where(empty, fill, weights) @ value

    return forward


def _compare(case: GradCase, theirs: dict[str, np.ndarray], factor: float = 2.0) -> list:
    ours, bound = _ours(case), backward_bound(case)
    found = [mismatch(getattr(ours, name), theirs[name], factor * bound[name], what=f"d{name} of {case}")
             for name in theirs]
    return [off for off in found if off is not None]


@pytest.mark.parametrize("case", [case for case in CASES if set(case.options) <= TORCH_OPTIONS], ids=str)
def test_torch_sdpa_autograd_agrees(case: GradCase) -> None:
    found = _compare(case, _autograd(case, _torch_sdpa(case)))
    assert not found, "\n".join(map(str, found))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_forward_written_in_torch_agrees(case: GradCase) -> None:
    """Every option, the sinks' gradient included."""
    found = _compare(case, _autograd(case, _written_out(case)))
    assert not found, "\n".join(map(str, found))


def test_the_comparison_catches_a_gqa_gradient_not_summed() -> None:
    """dK and dV of a GQA group taken from the group's first query head only: torch's sum disagrees."""
    case = next(case for case in CASES if case.name == "gqa")
    theirs = _autograd(case, _torch_sdpa(case))
    assert not _compare(case, theirs)
    first_head = scaled_dot_product_attention_backward(case.query[0::2], case.key, case.value, case.grad_output[0::2])
    theirs_from_first = {**theirs, "key": first_head.key, "value": first_head.value}
    assert len(_compare(case, theirs_from_first)) == 2


def test_a_float32_autograd_is_outside_the_bound() -> None:
    """The bound is not vacuous: torch's float32 gradients of the plain case are far outside it."""
    case = CASES[0]
    ours, bound = _ours(case), backward_bound(case)
    tensors = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (case.query, case.key, case.value)]
    output = F.scaled_dot_product_attention(*tensors)
    grads = torch.autograd.grad(output, tensors, torch.tensor(case.grad_output, dtype=torch.float32))
    for name, grad in zip(("query", "key", "value"), grads):
        assert mismatch(grad.double().numpy(), getattr(ours, name), bound[name]) is not None, name
