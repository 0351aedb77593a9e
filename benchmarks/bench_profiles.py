"""Time the conformance profiles: seconds per backend for ``quick``, ``ci`` and ``thorough``.

    python benchmarks/bench_profiles.py [--profiles quick,ci] [--repeats 3] [--json FILE] [TARGET ...]

Runs ``kqv.conformance.check`` on each target (default: every built-in backend available here,
each of its kinds) with each profile, ``--repeats`` times with seeds 0, 1, ..., and prints the
median, the fastest and the slowest time per target and profile, with the number of clauses
checked and whether every run conformed. Times are wall-clock seconds on this machine; run it on
a quiet machine. Nothing here asserts a time: the figures go in the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from kqv.conformance.backends import BUILTINS, builtin
from kqv.conformance.profiles import profile as lookup
from kqv.conformance.runner import run_backend


def reach(name: str) -> str:
    """What a profile draws: its small sizes, and its sizes at tile boundaries (clause attention.tile-boundaries)."""
    p = lookup(name)
    return (f"{name}: {p.examples} examples per check and dtype with L, S up to {p.max_length} and E, Ev up to "
            f"{p.max_width}; then {p.tile_examples} per check judged against the reference with one size at a tile "
            f"boundary (L, S up to {p.length_boundaries()[-1]}, E, Ev, d_k, d_model up to {p.width_boundaries()[-1]}, "
            f"PE lengths up to {p.pe_length_boundaries()[-1]}), and {p.tile_clause_examples} per dtype for "
            f"attention.tile-boundaries with every size there")


def targets(names: list[str]) -> list[tuple[str, str]]:
    found = []
    for name in names or list(BUILTINS):
        for kind, backend in builtin(name).items():
            if backend.unavailable() is None:
                found.append((name, kind))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="built-in backends (default: all available)")
    parser.add_argument("--profiles", default="quick,ci", help="comma-separated profiles (default quick,ci)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per target and profile (default 3)")
    parser.add_argument("--json", help="write the figures to this file")
    arguments = parser.parse_args()
    rows = []
    for profile in arguments.profiles.split(","):
        print(reach(profile), flush=True)
        for name, kind in targets(arguments.targets):
            seconds, conformant, clauses = [], True, 0
            for seed in range(arguments.repeats):
                backend = builtin(name)[kind]
                started = time.perf_counter()
                report = run_backend(backend, profile, seed)
                seconds.append(time.perf_counter() - started)
                conformant &= report.conformant
                clauses = len(report.clauses)
            rows.append({"target": name, "kind": kind, "profile": profile, "median_s": statistics.median(seconds),
                         "min_s": min(seconds), "max_s": max(seconds), "runs": len(seconds), "clauses": clauses,
                         "conformant": conformant})
            row = rows[-1]
            print(f"{profile:<9} {name:<16} {kind:<5} median {row['median_s']:7.1f} s  (min {row['min_s']:.1f}, "
                  f"max {row['max_s']:.1f}, {row['runs']} runs, {clauses} clauses, "
                  f"{'conformant' if conformant else 'NOT conformant'})", flush=True)
    if arguments.json:
        machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
        with open(arguments.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": machine, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
