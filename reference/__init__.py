"""kqv.reference: the float64 NumPy reference of transformer attention, and its mpmath oracle.

The reference is the yardstick of kqv: each function computes one formula of the
spec (``kqv.spec``) in float64 whatever the input dtype, and its docstring cites
the clause ids it implements. :mod:`kqv.reference.oracle` evaluates the same
formulas with mpmath at arbitrary precision, to judge the reference itself.

- :func:`scaled_dot_product_attention`: ``softmax(Q K^T * scale + mask) V`` with the
  contract of ``torch.nn.functional.scaled_dot_product_attention``
  (clause ``attention.sdpa``);
- :func:`attention_weights`: the weights ``P`` of that softmax, ``(..., L, S)``;
- :func:`scaled_dot_product_attention_backward`: its analytic backward, the :class:`Gradients`
  ``(dQ, dK, dV, dsink)`` from the upstream gradient ``dO`` (clauses ``gradient.*``);
- :func:`softmax`: the stable float64 softmax (clauses ``softmax.definition``,
  ``softmax.stable``);
- :func:`alibi_slopes`: the ALiBi slopes the paper gives ``n`` heads (clause
  ``alibi.slopes``);
- :func:`causal_mask`: the causal keep-mask, top-left or bottom-right
  (clauses ``mask.causal.top-left``, ``mask.causal.bottom-right``);
- :func:`multi_head_attention`: multi-head attention (clauses ``mha.*``);
- :func:`multi_head_attention_backward`: its analytic backward, the :class:`MhaGradients` of every input from
  ``dY`` (clauses ``mha.gradient.inputs``, ``mha.gradient.weights``);
- :func:`sinusoidal_positional_encoding`: the sinusoidal positional encoding
  (clauses ``pe.sinusoid``, ``pe.odd-d-model``).
"""

from .alibi import alibi_slopes
from .backward import scaled_dot_product_attention_backward
from .backward_stages import Gradients
from .masking import causal_mask
from .mha import multi_head_attention
from .mha_backward import MhaGradients, multi_head_attention_backward
from .pe import sinusoidal_positional_encoding
from .sdpa import attention_weights, scaled_dot_product_attention
from .softmax import softmax

__all__ = [
    "Gradients",
    "MhaGradients",
    "alibi_slopes",
    "attention_weights",
    "causal_mask",
    "multi_head_attention",
    "multi_head_attention_backward",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_backward",
    "sinusoidal_positional_encoding",
    "softmax",
]
