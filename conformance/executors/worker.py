"""The worker side: a zygote process that loads backends, and the workers it forks to run the cases.

:class:`~kqv.conformance.executors.zygote.Zygote` starts it as
``python -m kqv.conformance.executors.worker FD`` (FD: its end of a socket pair), once per process
of kqv. The zygote imports kqv, and each backend it is sent (the recipe that loads it again, or the
pickled Backend, with ``sys.path``), but never calls one, so it holds no threads and no device;
for each worker the parent sends a socket, and the zygote forks a child that serves on it, in
milliseconds instead of a fresh interpreter's second or two. The zygote also reports how a child
ended (``waitpid``), so the parent can name the signal.

A worker answers ``("run", check key, case)`` and ``("diagnose", None, case)`` (the evidence of one
call for the diagnosis of a failure, :mod:`kqv.conformance.diagnosis`) with one reply each. Before
every call of the backend it sends ``("call",)``, so that the parent's timeout runs per call. What
the backend writes to the file descriptors 1 and 2 lands in a file the parent reads; Python's own
prints and warnings come back counted with the outcome.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import pickle
import sys
import traceback
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle
from typing import Any


def _flush_c_streams() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _announced(fn: Any, connection: Connection) -> Any:
    """``fn``, telling the parent before each call that a call starts."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        connection.send(("call",))
        return fn(*args, **kwargs)

    return call


def _announcing(backend: Any, connection: Connection) -> Any:
    """The backend, telling the parent before each call of it (or of its backward callable) that a call starts."""
    backward = None if backend.backward is None else _announced(backend.backward, connection)
    return dataclasses.replace(backend, fn=_announced(backend.fn, connection), backward=backward)


def load(payload: tuple[str, Any]) -> Any:
    """The backend a payload of :func:`~kqv.conformance.executors.isolated.payload_of` names."""
    how, value = payload
    if how == "recipe":
        from kqv.conformance.loading import resolve

        target, kind, overrides, arrays, backward = value
        return next(b for b in resolve(target, kind, overrides, arrays, backward) if b.kind == kind)
    return pickle.loads(value)


def serve(connection: Connection, backend: Any) -> None:
    """Answer the parent's requests until it closes the connection."""
    from kqv.conformance.executors.outcome import diagnose_case, run_case
    from kqv.conformance.registry import CHECKS

    backend = _announcing(backend, connection)
    by_key = {(c.kind, c.clause, c.name): c for c in CHECKS}
    while True:
        try:
            request, key, case = connection.recv()
        except EOFError:
            return
        try:
            if request == "diagnose":
                reply: tuple = ("evidence", diagnose_case(backend, case))
            else:
                reply = ("outcome", run_case(by_key[key], backend, case))
        except Exception:  # noqa: BLE001 - a bug of kqv's check, not a finding: the parent raises it
            reply = ("error", traceback.format_exc())
        sys.stdout.flush()
        sys.stderr.flush()
        _flush_c_streams()
        connection.send(reply)


def zygote(control: Connection) -> None:
    """Load backends when asked, fork a worker serving one of them for each socket the parent sends, and report how
    each worker ended. Never calls a backend, so it holds no threads and no device to fork."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # torch.cuda.is_available() without a CUDA context
    from kqv.conformance import checks  # noqa: F401 - registers every check before the forks

    loaded: dict[bytes, Any] = {}
    control.send(("ready",))
    while True:
        try:
            request = control.recv()
        except EOFError:
            return
        if request[0] == "load":
            _, key, payload, path = request
            sys.path[:] = path
            try:
                loaded[key] = load(payload)
                control.send(("loaded",))
            except BaseException:  # noqa: BLE001 - told to the parent, which reports it
                control.send(("error", traceback.format_exc()))
        elif request[0] == "fork":
            handle = recv_handle(control)
            pid = os.fork()
            if pid == 0:
                control.close()
                _work(Connection(handle), loaded[request[1]])
            os.close(handle)
            control.send(("forked", pid))
        elif request[0] == "wait":
            try:
                _, status = os.waitpid(request[1], 0)
                control.send(("ended", os.waitstatus_to_exitcode(status)))
            except ChildProcessError:  # forked by an earlier zygote
                control.send(("ended", None))


def _work(connection: Connection, backend: Any) -> None:
    """The forked worker's whole life: serve, then end with the status the backend left."""
    code = 0
    try:
        serve(connection, backend)
    except SystemExit as exit:  # the backend called sys.exit(): its status is the finding
        code = exit.code if isinstance(exit.code, int) else 1
    except BaseException:  # noqa: BLE001 - printed to the output the parent reads
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    _flush_c_streams()
    os._exit(code)


def main() -> None:
    zygote(Connection(int(sys.argv[1])))


if __name__ == "__main__":
    main()
