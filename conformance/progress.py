"""Progress of a long ``kqv check`` on standard error: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time

from .runner import Progress


def reporter(stream=None) -> Progress:
    """A progress callback for :func:`kqv.conformance.runner.run_backend`."""
    stream = stream or sys.stderr
    if stream.isatty():
        return _bar(stream)
    started: dict[str, float] = {}

    def plain(event: str, info: dict) -> None:
        key = f"{info['target']} ({info.get('kind', '')})"
        if event == "target":
            started[info["target"]] = time.perf_counter()
            print(f"checking {key}: {info['checks']} checks", file=stream, flush=True)
        elif event == "clause" and info["status"] == "failed":
            print(f"  {info['target']}: {info['clause']} failed", file=stream, flush=True)
    return plain


def _bar(stream) -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
              console=Console(file=stream), transient=True)
    tasks: dict[str, int] = {}

    def update(event: str, info: dict) -> None:
        if event == "target":
            if not tasks:
                bar.start()
            tasks[info["target"]] = bar.add_task(f"{info['target']} ({info['kind']})", total=info["checks"])
        elif event == "clause":
            task = tasks[info["target"]]
            bar.update(task, advance=1, description=f"{info['target']}: {info['clause']}")
            if bar.tasks[task].finished:
                bar.remove_task(task)
                tasks.pop(info["target"])
                if not tasks:
                    bar.stop()
    return update
