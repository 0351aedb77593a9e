"""Differentiating an ``sdpa`` backend on a case and judging its gradients: the pieces every gradient check shares.

``dO`` is drawn with the case (:func:`upstream`: standard normal entries of the output's shape, in the case's
dtype, from the case's seed); :func:`gradients` gets ``(dQ, dK, dV)`` from the backend and checks that each has its
input's shape and dtype; :func:`expectation` gives the reference's gradients on the same rounded inputs and ``dO``
and the bound of :mod:`kqv.conformance.kinds.sdpa.backward_bound`; :func:`judge` compares them.
"""

from __future__ import annotations

import numpy as np

from kqv.reference.backward_stages import Gradients

from ..backend import Backend, BackendError, BackwardInvocation, invoke_backward
from ..compare import mismatch
from ..dtypes import LARGEST, as_float64, name_of, round_to
from ..kinds.sdpa.backward_bound import backward_expectation
from ..kinds.sdpa.bound import prepared
from ..kinds.sdpa.call import fresh, keywords
from ..kinds.sdpa.case import SdpaCase, SdpaInputs
from ..messages import gradient_wrong_dtype, gradient_wrong_shape
from ..registry import CheckFailure
from ..tolerance import Precision

NAMES = ("query", "key", "value")
SYMBOLS = {"query": "dQ", "key": "dK", "value": "dV"}
UPSTREAM_SALT = 81  # the salt of dO in the case's generator


def what(name: str) -> str:
    """``dK (the gradient of the key)``: how the messages name a gradient (``dw_o (the gradient of w_o)`` for the
    arguments of mha)."""
    if name not in SYMBOLS:
        return f"d{name} (the gradient of {name})"
    return f"{SYMBOLS[name]} (the gradient of the {name})"


HEADROOM = 16  # dP, D and dA stay this many times below the dtype's largest number


def upstream(case: SdpaCase, inputs: SdpaInputs, salt: int = UPSTREAM_SALT,
             headroom: float = HEADROOM) -> np.ndarray:
    """``dO``: standard normal entries of the output's shape ``(..., L, Ev)`` in the case's dtype, scaled down where
    the intermediates of the backward would come within ``headroom`` of the dtype's largest number.

    A kernel may store ``dP = dO V^T``, ``D`` and ``dA`` in the storage dtype (flash kernels do), and the error model
    assumes that nothing it stores overflows; all three are at most ``W_ij = sum_c |dO_ic| |V_jc|`` (``dA`` at most
    twice that), so ``dO`` is scaled so that ``headroom`` times the largest ``W`` fits (values of 1e4 in float16
    would otherwise give ``dP`` past 65504). The gradients are linear in ``dO``: the scale changes no property."""
    drawn = fresh(case, inputs.output_shape(), salt)
    largest = np.max(np.sum(np.abs(as_float64(drawn)), axis=-1), initial=0.0) \
        * np.max(np.abs(as_float64(inputs.value)), initial=0.0)  # >= every W_ij
    return within_headroom(drawn, largest, case.dtype, headroom)


def within_headroom(drawn: np.ndarray, largest: float, dtype: str, headroom: float = HEADROOM) -> np.ndarray:
    """``drawn`` as it is when ``headroom`` times ``largest`` (a bound of the backward's intermediates, linear in
    ``drawn``) fits the dtype, else scaled down so that it does and rounded to ``dtype`` again."""
    if headroom * largest <= LARGEST[dtype]:
        return drawn
    return round_to(as_float64(drawn) * (LARGEST[dtype] / (headroom * largest)), dtype)


def differentiate(backend: Backend, inputs: SdpaInputs, grad_output: np.ndarray,
                  layout: str = "contiguous") -> BackwardInvocation:
    """The backend's gradients of the call ``inputs`` given ``dO`` (``grad_output``), as returned."""
    try:
        # return_lse stays out: the gradients are those of the output
        return invoke_backward(backend, (inputs.query, inputs.key, inputs.value), keywords(inputs, results=False),
                               NAMES, grad_output, layout)
    except BackendError as error:
        raise CheckFailure(str(error)) from None


def gradients(backend: Backend, inputs: SdpaInputs, grad_output: np.ndarray, layout: str = "contiguous") -> Gradients:
    """The backend's ``(dQ, dK, dV)`` as float64, after checking that each has its input's shape and dtype."""
    invocation = differentiate(backend, inputs, grad_output, layout)
    checked = []
    for name, got in zip(NAMES, invocation.gradients):
        given = getattr(inputs, name)
        if got.shape != given.shape:
            raise CheckFailure(gradient_wrong_shape(SYMBOLS[name], got.shape, given.shape, name))
        if got.dtype != given.dtype:
            raise CheckFailure(gradient_wrong_dtype(SYMBOLS[name], name_of(got.dtype), name_of(given.dtype), name))
        checked.append(as_float64(got))
    return Gradients(*checked)


def expectation(backend: Backend, inputs: SdpaInputs, grad_output: np.ndarray,
                case: SdpaCase) -> tuple[Gradients, Gradients]:
    """``(expected, bound)``: the reference's gradients on the rounded inputs and ``dO`` under the backend's declared
    precision, alignment and convention for rows that keep no key, and their bound (clause ``gradient.accuracy``)."""
    declaration = backend.declaration
    precision = Precision.of(case.dtype, declaration.accumulation)
    call = prepared(inputs, declaration.alignment, declaration.masked_rows or "zeros")
    return backward_expectation(call, as_float64(grad_output), precision, inputs.key.shape, inputs.value.shape)


def agree_gradient(name: str, got: np.ndarray, expected: np.ndarray, bound: np.ndarray, dtype: str,
                   about: str = "") -> None:
    """Raise :class:`~kqv.conformance.registry.CheckFailure` unless gradient ``name`` is within ``bound`` of
    ``expected``. Where the reference is NaN (the ``dQ`` row of a row that keeps no key under the ``nan`` convention)
    the clause asks nothing; where ``|expected| + bound`` reaches the largest finite number of ``dtype``, the gradient
    rounds to infinity in it, and an infinity of the expected sign agrees."""
    free = np.isnan(expected)
    with np.errstate(invalid="ignore"):
        overflows = np.isinf(got) & (np.abs(expected) + bound >= LARGEST[dtype]) & (np.sign(got) == np.sign(expected))
    got = np.where(overflows, expected, got)
    found = mismatch(np.where(free, 0.0, got), np.where(free, 0.0, expected), np.where(free, 0.0, bound),
                     what=what(name) + about)
    if found is not None:
        raise CheckFailure(str(found))


def judge(backend: Backend, case: SdpaCase, names: tuple[str, ...] = NAMES, inputs: SdpaInputs | None = None,
          grad_output: np.ndarray | None = None, about: str = "") -> None:
    """The gradients ``names`` agree with the reference's within their bound (clause ``gradient.accuracy``)."""
    inputs = inputs or case.build()
    grad_output = upstream(case, inputs) if grad_output is None else grad_output
    got = gradients(backend, inputs, grad_output)
    expected, bound = expectation(backend, inputs, grad_output, case)
    for name in names:
        agree_gradient(name, getattr(got, name), getattr(expected, name), getattr(bound, name), case.dtype, about)
