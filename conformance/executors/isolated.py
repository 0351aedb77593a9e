"""Running the backend under test in a worker process, so that a crash or a hang fails one case, not the run.

Workers are forked by the zygote process (:mod:`~kqv.conformance.executors.zygote`,
:mod:`~kqv.conformance.executors.worker`) that has loaded the backend: one on the first case and one after each death,
in milliseconds. A case that kills its worker fails with the signal named (or the exit status); a call that does not
return within ``timeout`` seconds fails with that, and the worker is killed. The parent keeps hypothesis, the
shrinking and the report, so every candidate of the shrinking runs in a live worker.
"""

from __future__ import annotations

import inspect
import os
import pickle
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from ..backend import Backend
from ..diagnosis.evidence import Evidence
from ..registry import Check
from .outcome import Outcome
from .zygote import shared


class IsolationError(Exception):
    """The backend cannot be sent to a worker process; the message says why and what to do."""


def payload_of(backend: Backend) -> tuple[str, Any]:
    """How the worker gets the backend: the recipe that loaded it, or the pickled Backend."""
    if backend.recipe is not None:
        return "recipe", tuple(backend.recipe)
    advice = ("define its function at the top level of an importable module or name it as a target string "
              "('module:function', 'path/to/file.py:function'), or check it in this process with isolation=False")
    module = getattr(backend.fn, "__module__", None)
    if module == "__main__":
        raise IsolationError(f"backend {backend.name!r} is defined in the script being run (__main__), which a worker "
                             f"process cannot import; {advice}")
    try:
        return "pickle", pickle.dumps(backend)
    except Exception as error:  # noqa: BLE001 - pickle raises many kinds
        raise IsolationError(f"backend {backend.name!r} cannot be sent to a worker process ({type(error).__name__}: "
                             f"{error}); {advice}") from None


def source_stamp(backend: Backend) -> tuple[str, int] | None:
    """The file that defines the backend's function and its modification time (None for a function without one)."""
    module = inspect.getmodule(backend.fn)
    path = getattr(module, "__file__", None)
    if backend.recipe is not None and ".py:" in backend.recipe.target:
        path = backend.recipe.target.rpartition(":")[0]
    try:
        return (str(path), os.stat(path).st_mtime_ns) if path else None
    except OSError:
        return None


def death(returncode: int | None) -> str:
    """What ended the worker: ``SIGSEGV (signal 11)`` or ``exit status 3``."""
    if returncode is None:
        return "an unknown status"
    if returncode < 0:
        try:
            return f"{signal.Signals(-returncode).name} (signal {-returncode})"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class WorkerDied(Exception):
    """The worker process died (``how`` is "crashed") or was killed after the timeout ("hung")."""

    def __init__(self, message: str, how: str) -> None:
        super().__init__(message)
        self.how = how


class Isolated:
    """An executor whose backend runs in a worker process forked by the
    :func:`~kqv.conformance.executors.zygote.shared` zygote; ``timeout`` seconds per call (0: none)."""

    def __init__(self, backend: Backend, timeout: float) -> None:
        self.payload = payload_of(backend)
        self.stamp = source_stamp(backend)
        self.timeout = timeout
        self.zygote = shared()
        self.connection: Connection | None = None  # to the live worker
        self.pid: int | None = None
        self.deaths = 0  # workers lost to a crash or a hang
        self.zygote.output.seek(0, os.SEEK_END)
        self.read_to = self.zygote.output.tell()

    def _ended(self, kill: bool) -> int | None:
        """Reap the worker (killing it first with ``kill``) and give its exit code."""
        assert self.connection is not None and self.pid is not None
        if kill:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = self.zygote.wait(self.pid)
        self.connection.close()
        self.connection = self.pid = None
        return code

    def _died(self, kill: bool) -> int | None:
        """Reap a worker lost to a crash (or, with ``kill``, to a hang) and count it."""
        self.deaths += 1
        return self._ended(kill)

    def _receive(self) -> tuple:
        """The worker's reply; ``("call",)`` notes restart the clock. Raises :class:`WorkerDied` with the reason."""
        assert self.connection is not None
        deadline = None if self.timeout <= 0 else time.monotonic() + self.timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self.connection.poll(remaining):
                try:
                    message = self.connection.recv()
                except (EOFError, OSError):
                    raise WorkerDied(f"the backend killed its worker process: {death(self._died(False))}",
                                     "crashed") from None
                if message[0] == "call":
                    deadline = None if self.timeout <= 0 else time.monotonic() + self.timeout
                    continue
                return message
            self._died(True)
            raise WorkerDied(f"the backend did not return within {self.timeout:g} s (the per-call timeout, "
                             f"--timeout); kqv killed its worker process", "hung")

    def _printed(self) -> str:
        output = self.zygote.output
        output.seek(self.read_to)
        text = output.read().decode("utf-8", "replace")
        self.read_to = output.tell()
        return text

    def _request(self, request: str, key: tuple[str, str, str] | None, case: Any, what: str) -> tuple:
        if self.connection is None:
            self.pid, self.connection = self.zygote.fork(self.payload, self.stamp)
        self.connection.send((request, key, case))
        reply = self._receive()
        if reply[0] == "error":
            raise RuntimeError(f"kqv's {what} raised in the worker process:\n{reply[1]}")
        return reply

    def run(self, check: Check, case: Any) -> Outcome:
        try:
            key = (check.kind, check.clause, check.name)
            outcome: Outcome = self._request("run", key, case, f"check {check.name} ({check.clause})")[1]
        except WorkerDied as died:
            outcome = Outcome("failed", str(died), fatal=died.how, cause=str(died))
        outcome.captured.add_text("output", self._printed())
        return outcome

    def diagnose(self, case: Any) -> Evidence | None:
        """The evidence of one call on ``case`` for the diagnosis of a failure (None when the worker died)."""
        try:
            evidence = self._request("diagnose", None, case, "diagnosis")[1]
        except WorkerDied:
            evidence = None
        self._printed()
        return evidence

    def close(self) -> None:
        """End the worker (the zygote stays, for the next backend)."""
        if self.connection is not None:
            self.connection.close()  # the worker ends at EOF
            self._ended(False)
