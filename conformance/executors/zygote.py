"""The parent's side of the zygote process (:mod:`.worker`): one per process of kqv, shared by every backend.

Started on the first isolated case and kept until the process ends, it makes a worker's start a
fork (milliseconds) instead of a new interpreter importing kqv and the backend (a second or two),
which is what lets every candidate of a crash's shrinking run in a fresh worker.
"""

from __future__ import annotations

import atexit
import pickle
import socket
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import send_handle
from typing import Any

START_SECONDS = 300.0  # importing kqv, or a backend's module, in the zygote is not a call of the backend


class Zygote:
    """Loads backends once and forks workers serving them; ``output`` holds what the zygote and its workers write
    to their file descriptors 1 and 2."""

    def __init__(self) -> None:
        self.output = tempfile.TemporaryFile()
        self.process: subprocess.Popen | None = None
        self.control: Connection | None = None
        self.loaded: dict[bytes, Any] = {}  # payload -> the stamp of its source when the zygote loaded it
        self.lock = threading.Lock()

    def _start(self) -> None:
        parent, child = socket.socketpair()
        self.process = subprocess.Popen([sys.executable, "-m", "kqv.conformance.executors.worker",
                                         str(child.fileno())], pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
                                        stdout=self.output, stderr=self.output)
        child.close()
        self.control = Connection(parent.detach())
        self.loaded = {}
        self._reply("start")

    def _reply(self, doing: str) -> tuple:
        assert self.control is not None and self.process is not None
        if not self.control.poll(START_SECONDS):
            self.process.kill()
            raise RuntimeError(f"the zygote process did not {doing} within {START_SECONDS:g} s")
        try:
            return self.control.recv()
        except EOFError:
            raise RuntimeError(f"the zygote process ended (exit code {self.process.wait()}) on {doing}; its output "
                               f"is in the report") from None

    def fork(self, payload: tuple[str, Any], stamp: Any = None) -> tuple[int, Connection]:
        """A new worker serving the backend of ``payload``: its pid and the connection to it.

        ``stamp`` identifies the backend's source as this process sees it (its file and modification time): when it
        differs from the one the zygote loaded, the zygote, which would still hold the old module, is started again.
        """
        key = pickle.dumps(payload)
        with self.lock:
            if key in self.loaded and self.loaded[key] != stamp:
                self._stop()
            if self.process is None or self.process.poll() is not None:
                self._start()
            assert self.control is not None and self.process is not None
            if key not in self.loaded:
                self.control.send(("load", key, payload, list(sys.path)))
                reply = self._reply("load the backend")
                if reply[0] != "loaded":
                    raise RuntimeError(f"the zygote process could not load the backend:\n{reply[1]}")
                self.loaded[key] = stamp
            parent, child = socket.socketpair()
            self.control.send(("fork", key))
            send_handle(self.control, child.fileno(), self.process.pid)
            child.close()
            pid = self._reply("fork a worker")[1]
        return pid, Connection(parent.detach())

    def wait(self, pid: int) -> int | None:
        """How the worker ``pid`` ended: its exit code, negative for a signal (None once the zygote is closed)."""
        with self.lock:
            if self.control is None:
                return None
            self.control.send(("wait", pid))
            return self._reply("reap a worker")[1]

    def close(self) -> None:
        with self.lock:
            self._stop()
            self.output.close()

    def _stop(self) -> None:
        if self.control is not None:
            self.control.close()  # the zygote ends at EOF
            self.control = None
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


_SHARED: list[Zygote] = []


def shared() -> Zygote:
    """The zygote of this process (started on first use, closed at exit)."""
    if not _SHARED:
        _SHARED.append(Zygote())
        atexit.register(_SHARED[0].close)
    return _SHARED[0]
