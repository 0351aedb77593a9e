"""The gradients of an ``sdpa`` backend as a facet of the contract (clauses ``gradient.*``, sections "gradients" and
"gradient-properties" of the spec).

A backend that can be differentiated declares ``backward=True`` (``kqv check TARGET --backward``). Its gradient
checks draw the cases of the ``sdpa`` kind itself (shapes, value profiles, masks, causal alignments, scales, dtypes
and every variant it declares), and an upstream gradient ``dO`` with them; kqv gets ``(dQ, dK, dV)`` through
:func:`~kqv.conformance.backend.invoke_backward`: the backend's backward callable when it has one, else its
adapter (torch autograd, ``jax.vjp``). They are judged against the float64 reference's analytic backward
(:func:`kqv.reference.scaled_dot_product_attention_backward`) within the bound of
:mod:`kqv.conformance.kinds.sdpa.backward_bound`, and by the properties of the backward pass.

- ``call``: drawing ``dO``, differentiating the backend, the reference's gradients and their bound;
- ``accuracy``: agreement with the reference (``gradient.value``, ``gradient.query``, ``gradient.key``,
  ``gradient.masked-row``, ``gradient.accuracy``), and the two clauses of the chain rule's middle, seen from
  outside: ``gradient.weights`` (an upstream gradient orthogonal to the values gives ``dP = 0``) and
  ``gradient.scores`` (the rows of ``dA`` sum to zero, so the key gradients do);
- ``properties``: linearity in ``dO``, keys no query keeps, causal rows, the group sum of grouped-query
  attention;
- ``implementation``: inputs left as they were, bitwise repeatable gradients.

The ``mha`` kind has the same facet, with the gradients of every input (``MHA_CLAUSES``, checked in
:mod:`kqv.conformance.kinds.mha.gradients`).
"""

from __future__ import annotations

CLAUSES = ("gradient.value", "gradient.weights", "gradient.scores", "gradient.query", "gradient.key",
           "gradient.masked-row", "gradient.accuracy", "gradient.linearity", "gradient.unkept-key", "gradient.causal",
           "gradient.group-sum", "gradient.inputs-unmodified", "gradient.determinism")
MHA_CLAUSES = ("mha.gradient.inputs", "mha.gradient.weights")  # the mha facet (kqv.conformance.kinds.mha.gradients)
ALL_CLAUSES = CLAUSES + MHA_CLAUSES  # every clause that judges a backward pass
CHECKS = ("kqv.conformance.gradients.accuracy", "kqv.conformance.gradients.properties",
          "kqv.conformance.gradients.implementation",
          "kqv.conformance.kinds.mha.gradients")  # the modules that register the checks

__all__ = ["ALL_CLAUSES", "CHECKS", "CLAUSES", "MHA_CLAUSES"]
