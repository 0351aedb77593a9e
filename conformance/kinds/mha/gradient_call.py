"""Differentiating an ``mha`` backend on a case and judging its gradients (clauses ``mha.gradient.inputs``,
``mha.gradient.weights``): the pieces the checks of :mod:`kqv.conformance.kinds.mha.gradients` share.

A backend that declares ``backward=True`` is differentiated on the cases of the ``mha`` kind itself, with ``dY``
drawn with them (standard normal entries of the output's shape in the case's dtype, from the case's seed): by torch
autograd or ``jax.vjp`` with respect to every array of the call, the biases given included, or by its backward
callable::

    backward(x_q, x_kv, w_q, w_k, w_v, w_o, grad_output, b_q=..., ..., *, num_heads, attn_mask=..., is_causal=...)
        -> (dx_q, dx_kv, dw_q, dw_k, dw_v, dw_o, db_q, ...)  # then one for each bias given, in the order q, k, v, o

``dx_q`` and ``dx_kv`` are the partial derivatives by each argument, also when ``x_kv`` is ``x_q``. They are judged
against :func:`kqv.reference.multi_head_attention_backward` within the bound of
:mod:`kqv.conformance.kinds.mha.backward_bound`.
"""

from __future__ import annotations

import numpy as np

from kqv.reference.mha import split_heads
from kqv.reference.mha_backward import MhaGradients

from ...backend import Backend, BackendError, invoke_backward
from ...dtypes import as_float64, name_of
from ...gradients.call import agree_gradient, within_headroom  # the sdpa facet's comparison and dO's headroom
from ...messages import gradient_wrong_dtype, gradient_wrong_shape
from ...registry import CheckFailure
from ...tolerance import Precision
from ..sdpa.call import fresh
from .backward_bound import mha_backward_expectation
from .call import ALL_BIASES, NAMES, keywords
from .case import MhaCase, MhaInputs

UPSTREAM_SALT = 81  # the salt of dY in the case's generator, as sdpa's dO


def upstream(case: MhaCase, inputs: MhaInputs) -> np.ndarray:
    """``dY``: standard normal entries of the output's shape ``(B, L, d_model)`` in the case's dtype, scaled down as
    sdpa's ``dO`` is (:func:`~kqv.conformance.gradients.call.upstream`) where the heads' ``dP = dO V^T``, ``D`` and
    ``dA`` could come near the dtype's largest number: all are at most ``W_ij = sum_c |dO_ic| |V_jc|`` (``dA``
    twice that), with ``|dO| <= |dY| |W_O|^T`` the heads' upstream gradient."""
    drawn = fresh(case, inputs.x_q.shape, UPSTREAM_SALT)
    value = as_float64(inputs.x_kv) @ as_float64(inputs.w_v) \
        + (0.0 if inputs.b_v is None else as_float64(inputs.b_v))  # (B, S, h*d_v)
    d_heads = np.abs(as_float64(drawn)) @ np.abs(as_float64(inputs.w_o)).T  # (B, L, h*d_v): >= |dO|
    h = inputs.num_heads
    largest = np.max(split_heads(d_heads, h) @ np.swapaxes(np.abs(split_heads(value, h)), -1, -2),
                     initial=0.0)  # (B, h, L, S) -> the largest W_ij
    return within_headroom(drawn, largest, case.dtype)


def gradients(backend: Backend, inputs: MhaInputs, grad_output: np.ndarray) -> MhaGradients:
    """The backend's gradient of every array of the call as float64, after checking each one's shape and dtype."""
    biases = tuple(f"b_{name}" for name in ALL_BIASES if getattr(inputs, f"b_{name}") is not None)
    try:
        invocation = invoke_backward(backend, tuple(getattr(inputs, name) for name in NAMES), keywords(inputs), NAMES,
                                     grad_output, wrt=biases)
    except BackendError as error:
        raise CheckFailure(str(error)) from None
    checked = {}
    for name, got in zip(NAMES + biases, invocation.gradients):
        given = getattr(inputs, name)
        if got.shape != given.shape:
            raise CheckFailure(gradient_wrong_shape("d" + name, got.shape, given.shape, name))
        if got.dtype != given.dtype:
            raise CheckFailure(gradient_wrong_dtype("d" + name, name_of(got.dtype), name_of(given.dtype), name))
        checked[name] = as_float64(got)
    return MhaGradients(**checked)


def judge(backend: Backend, case: MhaCase, names: tuple[str, ...]) -> None:
    """The gradients ``names`` (those given) agree with the reference's within their bound."""
    inputs = case.build()
    grad_output = upstream(case, inputs)
    got = gradients(backend, inputs, grad_output)
    declaration = backend.declaration
    expected, bound = mha_backward_expectation(inputs, as_float64(grad_output),
                                               Precision.of(case.dtype, declaration.accumulation),
                                               declaration.masked_rows or "zeros", declaration.alignment)
    for name in names:
        if getattr(expected, name) is not None:
            agree_gradient(name, getattr(got, name), getattr(expected, name), getattr(bound, name), case.dtype)
