"""``kqv check --jobs N`` and the pytest plugin under pytest-xdist give the verdicts of a serial run, bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kqv.conformance import check

BROKEN = Path(__file__).resolve().parent / "broken"
TARGETS = ("numpy", f"{BROKEN / 'sdpa.py'}:causal_strict")
CLAUSES = ("attention.sdpa", "mask.causal.top-left", "mask.fully-masked-row", "attention.shape")


def without_times(value):
    """The report with its timings taken out: the rest must not depend on how the run was spread."""
    if isinstance(value, dict):
        return {key: without_times(item) for key, item in value.items() if key != "seconds"}
    if isinstance(value, list):
        return [without_times(item) for item in value]
    return value


def kqv_report(tmp_path: Path, jobs: int) -> dict:
    out = tmp_path / f"jobs{jobs}.json"
    words = [word for clause in CLAUSES for word in ("--clause", clause)]
    done = subprocess.run([sys.executable, "-m", "kqv.conformance.cli", "check", *TARGETS, "--kind", "sdpa",
                           "--profile", "quick", "--dtypes", "float64,float32", *words, "--jobs", str(jobs),
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr  # causal_strict breaks mask.causal.top-left
    return json.loads(out.read_text())


def test_jobs_give_the_report_of_a_serial_run(tmp_path: Path) -> None:
    serial, spread = kqv_report(tmp_path, 1), kqv_report(tmp_path, 2)
    assert without_times(spread) == without_times(serial)
    broken = serial["targets"][1]
    failed = {c["clause"]: c for c in broken["clauses"] if c["status"] == "failed"}
    causal = failed["mask.causal.top-left"]
    assert "outside the bound" in causal["message"] and causal["reproduce"], causal["message"]
    assert broken["ran_in"] == "a worker process" and "worker process" not in causal["message"]


def test_a_backend_that_cannot_travel_is_checked_here_with_jobs() -> None:
    def local(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        from kqv.reference import scaled_dot_product_attention
        return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)

    report = check(local, "sdpa", profile="quick", clauses=["attention.sdpa", "attention.shape"],
                   dtypes=("float64",), jobs=2)
    assert report.conformant and report.targets[0].ran_in.startswith("this process (")
    with pytest.raises(ValueError, match="jobs: expected an integer >= 1"):
        check(local, "sdpa", jobs=0)


def outcomes(junit: Path) -> dict[str, str]:
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        status = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        found[f"{case.get('classname')}::{case.get('name')}"] = status
    return found


def test_pytest_xdist_gives_the_verdicts_of_a_serial_run(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    runs = {}
    for label, spread in (("serial", ()), ("xdist", ("-p", "xdist", "-n", "2"))):
        targets = [word for target in TARGETS for word in ("--kqv-target", target)]
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *spread, *targets,
                               "--kqv-kind", "sdpa", "--kqv-profile", "quick", "--kqv-declare", "dtypes=float64",
                               "-k", " or ".join(CLAUSES), "--junitxml", str(tmp_path / f"{label}.xml")],
                              capture_output=True, text=True, cwd=tmp_path, timeout=600)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "kqv conventions" in done.stdout and "numpy (sdpa): masked_rows: zeros (declared)" in done.stdout
        runs[label] = outcomes(tmp_path / f"{label}.xml")
    assert runs["xdist"] == runs["serial"]
    assert "failure" in runs["serial"].values() and "passed" in runs["serial"].values()


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)")
def test_the_drivers_of_a_killed_run_end(tmp_path: Path) -> None:
    # A slow backend keeps both drivers busy; the run is killed as a CI job's timeout kills it.
    slow = tmp_path / "slow.py"
    slow.write_text("import time\nfrom kqv.reference import scaled_dot_product_attention\n\n"
                    "def attention(*args, **kwargs):\n    time.sleep(0.2)\n"
                    "    return scaled_dot_product_attention(*args, **kwargs)\n")
    run = subprocess.Popen([sys.executable, "-m", "kqv.conformance.cli", "check", f"{slow}:attention", "--kind", "sdpa",
                            "--profile", "quick", "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(drivers := _children(run.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(drivers) >= 2, "the run started no drivers"
        time.sleep(1)  # killed while they start, or once they run
        below = set(drivers) | {pid for driver in drivers for pid in _children(driver)}
    finally:
        run.kill()
        run.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in below if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} of the killed run's {len(below)} driver and zygote processes still run"
