"""Threads under ``--jobs`` (kqv.conformance.threads): each process checking at once gets its share of the cores,
and passes it on to the worker process that runs the backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kqv.conformance.threads import share

BACKEND = '''
import os
from kqv.reference import scaled_dot_product_attention


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """The reference, wrong (doubled) unless it runs with the share of the cores its test expects."""
    out = scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    if os.environ.get("KQV_THREADS") != os.environ["EXPECTED_THREADS"]:
        out = 2 * out
    return out.astype(query.dtype)
'''


def test_share_divides_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert share(1) == cores and share(cores) == 1 and share(10 * cores) == 1


def test_limit_holds_the_libraries_of_the_process_and_of_its_children() -> None:
    pytest.importorskip("torch")
    program = ("import json, os, subprocess, sys, torch\n"
               "from threadpoolctl import threadpool_info\n"
               "from kqv.conformance.threads import limit\n"
               "limit(1)\n"
               "child = subprocess.run([sys.executable, '-c', 'import os; print(os.environ[\"OMP_NUM_THREADS\"])'],\n"
               "                       capture_output=True, text=True).stdout.strip()\n"
               "print(json.dumps([torch.get_num_threads(), sorted({i['num_threads'] for i in threadpool_info()}),\n"
               "                  os.environ['KQV_THREADS'], child, os.environ['XLA_FLAGS']]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("KQV_THREADS", "OMP_NUM_THREADS", "XLA_FLAGS")}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    torch_threads, blas_threads, kqv_threads, child, xla = __import__("json").loads(done.stdout.splitlines()[-1])
    assert (torch_threads, blas_threads, kqv_threads, child) == (1, [1], "1", "1")
    assert "--xla_cpu_multi_thread_eigen=false" in xla


@pytest.mark.parametrize("jobs", [1, 2])
def test_each_job_and_its_worker_run_with_their_share_of_the_cores(tmp_path: Path, jobs: int) -> None:
    target = tmp_path / "mine.py"
    target.write_text(BACKEND)
    env = {k: v for k, v in os.environ.items() if k != "KQV_THREADS"}
    env["EXPECTED_THREADS"] = str(share(2))
    done = subprocess.run([sys.executable, "-m", "kqv.conformance.cli", "check", f"{target}:attention", "--profile",
                           "quick", "--dtypes", "float64", "--clause", "attention.sdpa", "--clause", "attention.shape",
                           "--jobs", str(jobs)], capture_output=True, text=True, timeout=600, env=env)
    # --jobs 2 holds each driver and its worker to share(2) threads; a serial run sets no limit, so the backend
    # computes its doubled output there: the same backend conforms with two jobs only.
    assert done.returncode == (0 if jobs == 2 else 1), done.stdout[-3000:] + done.stderr[-3000:]
