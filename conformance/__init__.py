"""kqv.conformance: runners that check attention implementations against the spec.

For now it holds the self-check (``kqv selfcheck``): the spec's derivations are
verified by sympy and the float64 reference is judged against the mpmath oracle
and, where torch is installed, against torch's attention.
"""
