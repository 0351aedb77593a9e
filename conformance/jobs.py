"""``--jobs N``: the clauses of every target checked in N driver processes at once, with the verdicts of a serial run.

Each task is one clause of one target (all its checks, every dtype). A driver process loads the
backend from its recipe or its pickle (as a worker does), keeps one executor per backend for all
the tasks it gets, and runs the clause with :func:`~kqv.conformance.runner.run_backend`. Hypothesis
is seeded per clause and dtype (:func:`~kqv.conformance.runner.case_seed`), so a clause draws the
same cases whichever driver runs it and whatever ran before; the parent puts the clauses back in
the order of a serial run. A backend that cannot travel to another process is checked here, serially.
Each driver, and the worker process it starts, may use ``cores // N`` threads
(:mod:`kqv.conformance.threads`).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .backend import Backend
from .executors import Executor, IsolationError, executor_for
from .executors.isolated import payload_of
from .kinds import masked_rows
from .options import DEFAULT_TIMEOUT
from .report.data import TargetReport
from .runner import Progress, link_foundations, run_backend, selected_checks
from .threads import available_cores, limit, share

_EXECUTORS: dict[bytes, tuple[Backend, Executor]] = {}  # in a driver process: one per backend


def _close_executors() -> None:
    for _, executor in _EXECUTORS.values():
        executor.close()


def _start_driver(threads: int, parent: int) -> None:
    """A driver's initializer: its share of the cores, and an end when the process that started it is gone.

    A driver whose ``kqv check`` was killed is orphaned (its parent becomes another process) and would wait on its
    queue forever, with its zygote and worker; it exits instead, which closes their pipes, so they end too.
    ``parent`` is the pid of ``kqv check``, given by it: the run may be killed before this initializer runs."""
    limit(threads)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="kqv-orphan-watch", daemon=True).start()


def _drive(payload: tuple[str, Any], origin: str, clause: str, profile: str, seed: int, isolation: bool | None,
           timeout: float) -> TargetReport:
    """In a driver process: check one clause of the backend ``payload`` names."""
    from .executors.worker import load

    key = pickle.dumps(payload)
    if key not in _EXECUTORS:
        backend = load(payload)
        _EXECUTORS[key] = backend, executor_for(backend, isolation, timeout)
        if len(_EXECUTORS) == 1:
            atexit.register(_close_executors)  # after the zygote's own: atexit runs the last registered first
    backend, executor = _EXECUTORS[key]
    return run_backend(backend, profile, seed, [clause], origin=origin, executor=executor)


def _joined(backend: Backend, parts: list[TargetReport]) -> TargetReport:
    """The reports of one target's clauses, one per task, as the report of one serial run."""
    clauses = link_foundations(backend.kind, [result for part in parts for result in part.clauses])
    first = parts[0]
    observed = next((p.conventions for p in parts if any(r.clause == masked_rows.CLAUSE for r in p.clauses)),
                    first.conventions)
    return TargetReport(first.target, first.kind, clauses, observed, first.description, first.dtypes,
                        sum(p.seconds for p in parts), first.variants, first.ran_in, first.origin)


def run_jobs(backends: list[tuple[Backend, str]], profile: str, seed: int, clauses: list[str] | None, jobs: int,
             progress: Progress | None = None, isolation: bool | None = None,
             timeout: float = DEFAULT_TIMEOUT) -> list[TargetReport]:
    """The reports of ``backends`` (each with the words that name it), their clauses spread over ``jobs`` drivers."""
    notify = progress or (lambda event, info: None)
    tasks: list[tuple[int, str, tuple[str, Any]]] = []
    serial: list[int] = []
    for index, (backend, _) in enumerate(backends):
        try:
            payload = payload_of(backend)
        except IsolationError:
            serial.append(index)
            continue
        for clause in dict.fromkeys(check.clause for check in selected_checks(backend.kind, clauses)):
            tasks.append((index, clause, payload))
    if len(tasks) < 2:  # a driver process would only add its start
        return [run_backend(backend, profile, seed, clauses, progress, origin, isolation=isolation, timeout=timeout)
                for backend, origin in backends]
    parts: dict[tuple[int, str], TargetReport] = {}
    for index, (backend, _) in enumerate(backends):
        if index not in serial:
            notify("target", {"target": backend.name, "kind": backend.kind,
                              "checks": sum(task[0] == index for task in tasks)})
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads of torch or JAX forked
    drivers = min(jobs, len(tasks))
    # Each driver and the worker it starts get their share of the cores (kqv.conformance.threads).
    with ProcessPoolExecutor(max_workers=drivers, mp_context=context, initializer=_start_driver,
                             initargs=(share(drivers), os.getpid())) as pool:
        futures = {pool.submit(_drive, payload, backends[index][1], clause, profile, seed, isolation, timeout):
                   (index, clause) for index, clause, payload in tasks}
        for future in as_completed(futures):
            index, clause = futures[future]
            try:
                parts[index, clause] = report = future.result()
            except BrokenProcessPool:
                raise RuntimeError(f"a driver process died while checking {clause} of {backends[index][0].name}: with "
                                   f"--no-isolation a backend that crashes takes its driver with it; check it with "
                                   f"isolation (the default) or --jobs 1") from None
            notify("clause", {"target": report.target, "clause": clause, "status": report.clauses[0].status})
    reports = []
    for index, (backend, origin) in enumerate(backends):
        if index in serial:
            reports.append(run_backend(backend, profile, seed, clauses, progress, origin, isolation=isolation,
                                       timeout=timeout))
        else:
            reports.append(_joined(backend, [parts[index, clause] for i, clause, _ in tasks if i == index]))
    return reports


__all__ = ["available_cores", "run_jobs"]
