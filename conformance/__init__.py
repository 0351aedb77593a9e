"""kqv.conformance: check an attention implementation clause by clause against the spec.

- :func:`check` (``check(fn, kind="sdpa", **declaration)``) runs the checks of every clause the
  backend's kind has and returns a :class:`Report`; :func:`replay` re-runs one failing case.
- :class:`Backend` bundles a callable, its :class:`Declaration` (features, dtypes, conventions,
  :class:`ExpectedFailure` known departures) and the :class:`Adapter` of its arrays
  (:class:`NumpyAdapter`, :class:`TorchAdapter`); a third-party backend is a small file defining one.
- The ``kqv check`` command (``kqv.conformance.cli``) and the pytest plugin
  (``pytest --kqv-target module:function --kqv-kind sdpa``) run the same checks.
- ``kqv selfcheck`` verifies the spec's derivations and the reference against its mpmath oracle.
"""

from .adapters import Adapter, NumpyAdapter, TorchAdapter
from .api import check, replay
from .backend import Backend
from .declaration import Declaration, ExpectedFailure
from .report.data import ClauseResult, Report, TargetReport

__all__ = ["Adapter", "Backend", "ClauseResult", "Declaration", "ExpectedFailure", "NumpyAdapter", "Report",
           "TargetReport", "TorchAdapter", "check", "replay"]
