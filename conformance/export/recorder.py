"""The reference as the backend an export runs the checks on: it answers every call, and records it as a case.

A check calls the backend it judges one or more times (a metamorphic check: the call and its
transformed twins). Run on a :class:`Recorder`, each call is answered by the float64 reference,
under the declaration's conventions, rounded to the output's dtype (:mod:`.forms`: so every check
passes, and hypothesis draws exactly the cases ``kqv check`` draws for a conformant backend), and
handed to the :class:`~kqv.conformance.export.writer.Writer` with its expected output and the bound
of each element.
"""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from ..declaration import Declaration
from .arrays import call_key
from .forms import answer, named
from .writer import Writer


class Recorder:
    """The backend of an export (:attr:`backend`): the reference answers, the :class:`Writer` keeps each new call.

    :meth:`start` begins an example of a clause; :attr:`calls` lists the case ids of its calls, in order.
    """

    def __init__(self, declaration: Declaration, writer: Writer) -> None:
        self.declaration = declaration
        self.writer = writer
        self.clause = ""
        self.calls: list[str] = []
        self.backend = Backend("kqv export", self.attention, declaration,
                               description="kqv.reference (float64 NumPy) under the declaration, recording each call")

    def start(self, clause: str) -> None:
        self.clause, self.calls = clause, []

    def attention(self, *args: Any, **keywords: Any) -> Any:
        """One call of the declaration's kind: the reference's answer, the case written if it is new."""
        call = named(self.declaration.kind, args, keywords)
        answered = answer(self.declaration.kind, call, self.declaration)
        self.calls.append(self.writer.add_case(call_key(call), self.clause, call, answered))
        return answered.returned
