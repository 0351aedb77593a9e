"""The checks, registered by importing their modules; :func:`checks_for` lists those of a kind."""

from . import mha, pe, sdpa_accuracy, sdpa_impl, sdpa_properties  # noqa: F401 - registers the checks
from .registry import CHECKS, Check, CheckFailure, Context, checks_for

__all__ = ["CHECKS", "Check", "CheckFailure", "Context", "checks_for"]
