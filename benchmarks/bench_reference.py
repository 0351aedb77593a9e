"""Speed and memory of the float64 reference against its peers, measured side by side in one run.

    python benchmarks/bench_reference.py [--repeats 7] [--json FILE] [--quick] [--long-length 65536]

Forward attention in float64 on the CPU for B=1, H=8, L=S=1024, E=Ev=64, without a mask and
causal: kqv's blocked reference (the form ``method="auto"`` takes at this size), kqv's dense
reference, torch's fused CPU kernel and its math kernel (``torch.nn.attention.sdpa_kernel``),
ONNX's reference evaluator (a one-node opset-23 ``Attention`` model) and a plain NumPy
``softmax(Q K^T / sqrt(E)) V``. Each time is the median of ``--repeats`` runs after a warm-up;
the ratios are kqv-blocked's time over each peer's. The achieved rate is ``4 B H L S E`` flops
(halved when causal: half the scores are masked) over the time, against the float64
matrix-multiply peak measured in the same run (a 4096 x 4096 NumPy product on every core).
Then where the blocked reference's time goes: each step of the online softmax timed on one block
of scores on one core, scaled to the whole call, next to the whole call on one worker and on all.
Then one long sequence, L=S=``--long-length``, H=1, E=64, causal and not, in a subprocess whose
peak resident memory (``VmHWM`` of ``/proc/self/status``, the ``ru_maxrss`` of that process) is
read when it ends. Figures, not assertions: they go in the README and the closing notes.

Each run prints the BLAS that NumPy runs on (threadpoolctl: library, kernel architecture, threads).
A machine may pin OpenBLAS to an older kernel for every process (``OPENBLAS_CORETYPE=Haswell``
keeps it off AVX-512): with ``--blas both`` (the default) the whole benchmark runs twice, each
time in a fresh subprocess (OpenBLAS reads its variables when it loads), once with
``OPENBLAS_CORETYPE=Haswell`` and once without it and without ``OPENBLAS_L2_SIZE`` (the machine's
own kernel); the summary gives the ratio to torch's fused kernel both ways. Only the benchmark's
own processes change: tests and CI keep the machine's settings.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from kqv.reference import scaled_dot_product_attention

B, H, L, E = 1, 8, 1024, 64


def median_time(function, repeats: int) -> float:
    return median_times({"": function}, repeats)[""]


def median_times(functions: dict, repeats: int) -> dict:
    """Median wall time of each function over ``repeats`` rounds after one warm-up round; each round
    runs every function once, so that a change in the machine's load touches all of them alike."""
    times = {name: [] for name in functions}
    for round_ in range(repeats + 1):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            if round_:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def plain_numpy(query, key, value, is_causal):
    scores = query @ np.swapaxes(key, -1, -2) / np.sqrt(query.shape[-1])  # (B, H, L, S)
    if is_causal:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ value


def torch_kernel(kernel_name):
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.set_num_threads(os.cpu_count() or 1)  # 2 on the machine of the README
    kernel = getattr(SDPBackend, kernel_name)

    def run(query, key, value, is_causal):
        with sdpa_kernel(kernel), torch.no_grad():
            return torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=is_causal)
    return run


def onnx_reference(query_shape, is_causal):
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    names = ("Q", "K", "V")
    node = helper.make_node("Attention", list(names), ["Y"], is_causal=int(is_causal))
    graph = helper.make_graph([node], "attention",
                              [helper.make_tensor_value_info(n, TensorProto.DOUBLE, query_shape) for n in names],
                              [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, None)])
    evaluator = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)]))
    return lambda query, key, value, _: evaluator.run(None, dict(zip(names, (query, key, value))))[0]


def peers(is_causal):
    """(name, function taking (query, key, value, is_causal), array kind) of every peer, or why it is missing."""
    found = [("kqv blocked", lambda q, k, v, c: scaled_dot_product_attention(q, k, v, is_causal=c, method="blocked"),
              "numpy"),
             ("kqv dense", lambda q, k, v, c: scaled_dot_product_attention(q, k, v, is_causal=c, method="dense"),
              "numpy"),
             ("numpy softmax(QK^T)V", plain_numpy, "numpy")]
    missing = {}
    try:
        found += [("torch fused (FLASH_ATTENTION)", torch_kernel("FLASH_ATTENTION"), "torch"),
                  ("torch math (MATH)", torch_kernel("MATH"), "torch")]
    except ImportError as error:
        missing["torch"] = str(error)
    try:
        found.append(("onnx.reference Attention", onnx_reference((B, H, L, E), is_causal), "numpy"))
    except (ImportError, AttributeError) as error:
        missing["onnx.reference Attention"] = str(error)
    return found, missing


def matmul_peak(repeats: int) -> float:
    a = np.random.default_rng(0).standard_normal((4096, 4096))
    return 2 * 4096**3 / median_time(lambda: a @ a, max(3, repeats // 2)) / 1e9


def profile(is_causal: bool, repeats: int) -> dict:
    """Where the blocked reference's time goes, on this configuration.

    Each step of the online softmax is timed on one block of ``R x 1024`` scores (the default
    block) on one core, BLAS held to one thread, per score; times the number of scores the blocked
    form computes (with ``is_causal``: those on or below the diagonal, and the few masked ones the
    diagonal blocks hold), that predicts the call on one core, next to the call measured on one
    worker and one BLAS thread, and on every core.
    """
    from threadpoolctl import threadpool_limits

    import kqv.reference.blocked as blocked

    rows, keys = blocked.DEFAULT_BLOCK
    diagonal = min(blocked.DIAGONAL_KEYS, keys)
    offset = 0 if is_causal else None
    scores = B * H * sum((j1 - j0) * (min(i0 + rows, L) - i0 - r) for i0 in range(0, L, rows)
                         for j0, j1, r in blocked.key_blocks(i0, min(i0 + rows, L), L, offset, keys, diagonal))
    rng = np.random.default_rng(1)
    query = rng.standard_normal((rows, E)) / np.sqrt(E)  # (R, E), scaled
    key, value = rng.standard_normal((keys, E)), rng.standard_normal((keys, E))  # (1024, E)
    x = query @ key.T
    top = x.max(axis=-1, keepdims=True)
    shifted = x - top
    steps = {  # one step of clause softmax.online on a block, as the blocked form does it
        "scores Q K^T (matmul)": lambda: query @ key.T,
        "row max": lambda: x.max(axis=-1, keepdims=True),
        "x - m": lambda: np.subtract(x, top, out=shifted),
        "exp": lambda: np.exp(shifted, out=x),
        "row sums": lambda: x.sum(axis=-1, keepdims=True),
        "P V (matmul)": lambda: x @ value,
    }
    arrays = [rng.standard_normal((B, H, L, E)) for _ in range(3)]
    with threadpool_limits(limits=1, user_api="blas"):
        per_block = median_times(steps, 5 * repeats)
        one_core = median_time(lambda: blocked.blocked_attention(*arrays, is_causal=is_causal, workers=1), repeats)
    every_core = median_time(lambda: blocked.blocked_attention(*arrays, is_causal=is_causal), repeats)
    per_score = {name: seconds / (rows * keys) for name, seconds in per_block.items()}
    predicted = scores * sum(per_score.values())
    return {"causal": is_causal, "block": [rows, keys], "scores_computed": scores,
            "fraction_of_L_times_S": scores / (B * H * L * L),
            "steps_ns_per_score": {name: value * 1e9 for name, value in per_score.items()},
            "steps_ms_in_call_on_one_core": {name: value * scores * 1e3 for name, value in per_score.items()},
            "predicted_one_core_ms": predicted * 1e3, "measured_one_core_ms": one_core * 1e3,
            "measured_every_core_ms": every_core * 1e3, "cores": os.cpu_count(),
            "parallel_efficiency": one_core / every_core / (os.cpu_count() or 1)}


def print_profile(row: dict, peak: float) -> None:
    cores = row["cores"]
    print(f"\n  where kqv blocked's time goes ({'causal' if row['causal'] else 'no mask'}; each step timed on a "
          f"{row['block'][0]} x {row['block'][1]} block on one core, times the {row['scores_computed']:,} scores "
          f"computed, {row['fraction_of_L_times_S']:.0%} of L x S):")
    total = row["predicted_one_core_ms"]
    for name, ms in row["steps_ms_in_call_on_one_core"].items():
        print(f"    {name:<24} {ms:7.1f} ms  {ms / total:5.1%}   ({row['steps_ns_per_score'][name]:.2f} ns per score)")
    print(f"    {'sum of the steps':<24} {total:7.1f} ms on one core; the call measured: {row['measured_one_core_ms']:.1f} ms "
          f"on one core, {row['measured_every_core_ms']:.1f} ms on {cores} ({row['parallel_efficiency']:.0%} efficiency)")
    exp_ms = row["steps_ms_in_call_on_one_core"]["exp"] / cores
    matmul_ms = 4 * row["scores_computed"] * E / (peak * 1e9) * 1e3
    row["floor_ms"] = exp_ms + matmul_ms
    print(f"    floor of this design: exp alone on {cores} cores {exp_ms:.1f} ms + both products at the "
          f"measured matmul peak {matmul_ms:.1f} ms = {row['floor_ms']:.1f} ms")


def long_sequence(length: int, is_causal: bool) -> dict:
    """Time and peak memory of one blocked call on L = S = ``length``, in a fresh process."""
    code = (
        "import time, numpy as np\n"
        "def hwm():  # peak resident set of this process image, in KiB (VmHWM, reset by exec)\n"
        "    return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
        "from kqv.reference import scaled_dot_product_attention\n"
        f"rng = np.random.default_rng(0); shape = (1, {length}, 64)\n"
        "q, k, v = (rng.standard_normal(shape) for _ in range(3))\n"
        "before = hwm()\n"
        "t = time.perf_counter()\n"
        f"out = scaled_dot_product_attention(q, k, v, is_causal={is_causal})\n"
        "t = time.perf_counter() - t\n"
        "print(t, before, hwm(), bool(np.isfinite(out).all()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, before, peak, finite = done.stdout.split()
    return {"L": length, "S": length, "H": 1, "E": 64, "causal": is_causal, "seconds": float(seconds),
            "peak_rss_mib": int(peak) / 1024, "rss_before_call_mib": int(before) / 1024, "finite": finite == "True",
            "dense_scores_gib": length * length * 8 / 2**30}


BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas() -> dict:
    """The BLAS NumPy calls, as threadpoolctl reports it, and the variables that steer OpenBLAS."""
    from threadpoolctl import threadpool_info

    found = [{key: entry.get(key) for key in ("internal_api", "version", "architecture", "num_threads")}
             for entry in threadpool_info() if entry.get("user_api") == "blas"]
    return {"libraries": found, "environment": {name: os.environ.get(name) for name in BLAS_VARIABLES}}


def blas_text(info: dict) -> str:
    libraries = ", ".join(f"{e['internal_api']} {e['version']} kernel {e['architecture']} ({e['num_threads']} threads)"
                          for e in info["libraries"]) or "none found"
    set_ = ", ".join(f"{k}={v}" for k, v in info["environment"].items() if v is not None) or "no OPENBLAS_* variables"
    return f"{libraries}; {set_}"


def torch_ratios(results: dict) -> dict:
    """kqv blocked's time over torch's fused kernel's, without a mask and causal."""
    ratios = {}
    for configuration in results["configurations"]:
        row = next((r for r in configuration["rows"] if r["name"].startswith("torch fused")), None)
        if row is not None:
            ratios["causal" if configuration["causal"] else "no mask"] = row["ratio_kqv_blocked_over_peer"]
    return ratios


def in_subprocess(arguments: argparse.Namespace, environment: dict) -> dict:
    """The benchmark in a fresh process with ``environment`` (OpenBLAS reads its variables when it loads)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "run.json")
        words = [sys.executable, __file__, "--blas", "as-set", "--json", out, "--repeats", str(arguments.repeats),
                 "--long-length", str(arguments.long_length)] + (["--quick"] if arguments.quick else []) + \
                (["--no-long"] if arguments.no_long else [])
        subprocess.run(words, env=environment, check=True)
        with open(out, encoding="utf-8") as handle:
            return json.load(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--quick", action="store_true", help="3 repeats and a 16,384 long sequence")
    parser.add_argument("--long-length", type=int, default=65536)
    parser.add_argument("--no-long", action="store_true", help="skip the long sequence")
    parser.add_argument("--blas", choices=("both", "as-set"), default="both",
                        help="both (default): run pinned to OpenBLAS's Haswell kernel and on the machine's own, each in "
                             "a subprocess; as-set: once, in this process, as the environment sets OpenBLAS")
    arguments = parser.parse_args()
    if arguments.blas == "as-set":
        results = measure(arguments)
    else:
        bare = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
        runs = {"OPENBLAS_CORETYPE=Haswell": {**bare, "OPENBLAS_CORETYPE": "Haswell"}, "own kernel": bare}
        results = {}
        for label, environment in runs.items():
            print(f"\n=== {label} ===", flush=True)
            results[label] = in_subprocess(arguments, environment)
        print("\nkqv blocked / torch fused (median times), by the BLAS kernel NumPy ran on:")
        for label, run in results.items():
            ratios = torch_ratios(run)
            print(f"  {label:<26} {blas_text(run['blas'])}: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    if arguments.json:
        with open(arguments.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


def measure(arguments: argparse.Namespace) -> dict:
    repeats = 3 if arguments.quick else arguments.repeats
    long_length = 16384 if arguments.quick else arguments.long_length
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((B, H, L, E)) for _ in range(3)]
    peak = matmul_peak(repeats)
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
               "blas": blas(), "matmul_peak_gflops": peak, "configurations": [], "long": []}
    print(f"BLAS: {blas_text(results['blas'])}")
    print(f"float64 matmul peak (4096 x 4096, numpy/OpenBLAS, {os.cpu_count()} cores): {peak:.1f} GFLOP/s")
    for is_causal in (False, True):
        found, missing = peers(is_causal)
        flops = 4 * B * H * L * L * E / (2 if is_causal else 1)
        calls = {}
        for name, function, kind in found:
            inputs = arrays
            if kind == "torch":
                import torch

                inputs = [torch.from_numpy(a) for a in arrays]
            calls[name] = functools.partial(function, *inputs, is_causal)
        times = median_times(calls, repeats)
        mine = times["kqv blocked"]
        print(f"\nB={B} H={H} L=S={L} E=Ev={E} float64, {'causal' if is_causal else 'no mask'} "
              f"(median of {repeats}; ratio = kqv blocked / peer)")
        rows = []
        for name, seconds in times.items():
            rate = flops / seconds / 1e9
            rows.append({"name": name, "median_ms": seconds * 1e3, "ratio_kqv_blocked_over_peer": mine / seconds,
                         "gflops": rate, "fraction_of_matmul_peak": rate / peak})
            print(f"  {name:<32} {seconds * 1e3:8.1f} ms   ratio {mine / seconds:5.2f}   {rate:5.1f} GFLOP/s "
                  f"({rate / peak:.0%} of peak)")
        for name, why in missing.items():
            print(f"  {name:<32} not measured: {why}")
        results["configurations"].append({"causal": is_causal, "rows": rows, "missing": missing})
        where = profile(is_causal, repeats)
        print_profile(where, peak)
        results["configurations"][-1]["profile"] = where
    for is_causal in () if arguments.no_long else (False, True):
        row = long_sequence(long_length, is_causal)
        results["long"].append(row)
        print(f"\nL=S={long_length} H=1 E=64 float64 {'causal' if is_causal else 'no mask'}: {row['seconds']:.1f} s, "
              f"peak RSS {row['peak_rss_mib']:.0f} MiB (of which {row['rss_before_call_mib']:.0f} MiB before the call; "
              f"the dense scores alone would take {row['dense_scores_gib']:.0f} GiB), finite: {row['finite']}")
    return results


if __name__ == "__main__":
    main()
