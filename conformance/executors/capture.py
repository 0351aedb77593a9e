"""What a backend prints and warns while one case runs, counted instead of shown.

A kernel that warns on every call would otherwise bury the progress lines under copies of one
warning; the report lists each distinct message once, with how many times it came, under the
clause whose case caused it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

MAX_LINE = 300  # longer lines are cut in the report


@dataclass
class Captured:
    """Distinct messages and their counts: ``"UserWarning: ..."``, ``"stdout: ..."``, ``"stderr: ..."``."""

    counts: Counter = field(default_factory=Counter)

    def add_text(self, stream: str, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                self.counts[f"{stream}: {line.rstrip()[:MAX_LINE]}"] += 1

    def add_warning(self, message: warnings.WarningMessage) -> None:
        text = " ".join(line.strip() for line in str(message.message).splitlines() if line.strip())
        self.counts[f"{message.category.__name__}: {text[:MAX_LINE]}"] += 1


@contextlib.contextmanager
def captured_python(into: Captured, streams: bool = True) -> Iterator[None]:
    """Record every warning (each one, not once per place) and, with ``streams``, what Python code writes to
    sys.stdout and sys.stderr (in-process runs leave the streams alone, for pdb)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        if streams:
            stack.enter_context(contextlib.redirect_stdout(stdout))
            stack.enter_context(contextlib.redirect_stderr(stderr))
        try:
            yield
        finally:
            for message in caught:
                into.add_warning(message)
            into.add_text("stdout", stdout.getvalue())
            into.add_text("stderr", stderr.getvalue())
