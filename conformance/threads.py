"""How many threads the numeric libraries of one process of kqv may use.

A process checking alone may use every core it may run on. Under ``--jobs N`` (or ``pytest -n N``)
N processes check at once, each with a worker process running the backend, so each pair gets
``cores // N`` threads: otherwise every torch, OpenBLAS, onnxruntime and XLA in them starts a
thread per core and the cores are oversubscribed (measured: two jobs on two cores took twice the
summed checking time of one).

:func:`limit` sets the limit for the process and the processes it starts: the environment
variables the libraries read when they load (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS``, XLA's ``--xla_cpu_multi_thread_eigen`` for one thread, and ``KQV_THREADS``,
which the ONNX adapter and the blocked reference read), and, for libraries already loaded,
``threadpoolctl`` and ``torch.set_num_threads``.
"""

from __future__ import annotations

import os
import sys

ENV = "KQV_THREADS"
NATIVE = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def share(processes: int) -> int:
    """The threads each of ``processes`` processes checking at once may use: ``cores // processes``, at least 1."""
    return max(1, available_cores() // max(1, processes))


def configured() -> int | None:
    """The limit set by :func:`limit` in this process or a parent (``KQV_THREADS``), or None."""
    text = os.environ.get(ENV, "")
    return int(text) if text.isdigit() and int(text) >= 1 else None


def limit(threads: int) -> None:
    """Hold this process, and the processes it starts, to ``threads`` threads per numeric library."""
    os.environ[ENV] = str(threads)
    for name in NATIVE:
        os.environ[name] = str(threads)
    if threads == 1 and XLA_ONE_THREAD not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_ONE_THREAD}".strip()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
