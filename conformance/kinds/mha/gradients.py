"""The gradient checks of an ``mha`` backend (clauses ``mha.gradient.inputs``, ``mha.gradient.weights``), a facet of
the contract as the gradients of ``sdpa`` are (:mod:`kqv.conformance.gradients`): each draws the cases of the kind's
shared checks (every weight profile, bias, mask, causal flag and self-attention) and judges its gradients with
:func:`kqv.conformance.kinds.mha.gradient_call.judge`.
"""

from __future__ import annotations

from ...gradients.accuracy import FACET, REQUIRES
from ...registry import check
from .checks import general
from .gradient_call import judge

INPUTS = ("x_q", "x_kv")
WEIGHTS = ("w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o")


@check("mha.gradient.inputs", "mha", general, requires=REQUIRES, variant=FACET)
def inputs_gradient(backend, case, context):
    """dX_q = dQ W_Q^T and dX_kv = dK W_K^T + dV W_V^T, the heads' gradients of dY W_O^T, within the bound."""
    judge(backend, case, INPUTS)


@check("mha.gradient.weights", "mha", general, requires=REQUIRES, variant=FACET)
def weights_gradient(backend, case, context):
    """dW_O = H^T dY, db_O = 1^T dY, dW_Q = X_q^T dQ, dW_K = X_kv^T dK, dW_V = X_kv^T dV and the biases' row sums,
    within the bound."""
    judge(backend, case, WEIGHTS)
