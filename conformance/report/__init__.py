"""Reports: the plain data of a run (:mod:`.data`), its failures grouped by root cause (:mod:`.causes`), and its
renderers, the terminal (:mod:`.terminal`) and Markdown (:mod:`.markdown`), which share the tables of
:mod:`.matrix`."""

from .data import STATUSES, SYMBOLS, CaseProblem, ClauseResult, DtypeResult, Report, TargetReport, Unavailable, combine

__all__ = ["STATUSES", "SYMBOLS", "CaseProblem", "ClauseResult", "DtypeResult", "Report", "TargetReport", "Unavailable",
           "combine"]
