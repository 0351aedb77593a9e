"""The checks, registered by importing their modules; :func:`checks_for` lists those of a kind.

The checks of each kind live in its home (``kqv.conformance.kinds.<kind>``), those of each variant
in its package (``kqv.conformance.variants.<variant>``), those of the gradients (the sdpa facet
``backward``) in ``kqv.conformance.gradients``, and the checks every kind shares are registered here for
each kind from :mod:`kqv.conformance.checks.shared`.
"""

import importlib

from ..kinds import KINDS
from ..kinds.mha import checks as _mha  # noqa: F401 - registers the checks
from ..kinds.pe import checks as _pe  # noqa: F401
from ..kinds.sdpa import accuracy as _accuracy, cache as _cache, properties as _properties  # noqa: F401
from ..gradients import CHECKS as _GRADIENT_CHECKS
from ..variants import VARIANTS
from . import shared
from ..registry import CHECKS, Check, CheckFailure, Context, checks_for

for _kind in KINDS.values():
    shared.register(_kind)
for _variant in VARIANTS.values():
    importlib.import_module(_variant.checks)
for _module in _GRADIENT_CHECKS:
    importlib.import_module(_module)

__all__ = ["CHECKS", "Check", "CheckFailure", "Context", "checks_for"]
