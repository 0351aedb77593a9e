"""A backend that aborts, segfaults, exits or hangs fails the case that caused it; the run goes on and the report is
written. What a backend prints or warns is counted in the report, not shown between the progress lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kqv.conformance import check
from kqv.conformance.executors import InProcess, IsolationError, executor_for
from kqv.conformance.executors.isolated import death

FAULTS = Path(__file__).resolve().parents[1] / "broken" / "faults.py"
ONE_CLAUSE = ("--kind", "sdpa", "--clause", "attention.sdpa", "--dtypes", "float64", "--profile", "quick")


def kqv(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kqv.conformance.cli", *arguments], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("faults")
    targets = [f"{FAULTS}:{name}" for name in ("aborts", "segfaults", "exits", "hangs")] + ["numpy"]
    done = kqv("check", *targets, *ONE_CLAUSE, "--timeout", "1", "--json", str(out / "r.json"),
               "--markdown", str(out / "r.md"))
    return done, json.loads((out / "r.json").read_text()), (out / "r.md").read_text()


@pytest.mark.parametrize("name, fault", [("aborts", "SIGABRT (signal 6)"), ("segfaults", "SIGSEGV (signal 11)"),
                                         ("exits", "exit status 3"),
                                         ("hangs", "did not return within 1 s (the per-call timeout, --timeout)")])
def test_a_fault_fails_its_clause_naming_it(faulty_run, name: str, fault: str) -> None:
    done, report, markdown = faulty_run
    assert done.returncode == 1, done.stdout + done.stderr
    target = next(t for t in report["targets"] if t["target"].endswith(f":{name}"))
    [result] = target["clauses"]
    assert result["status"] == "failed" and fault in result["message"], result["message"]
    assert target["ran_in"] == "a worker process"
    case = result["dtypes"][0]["case"]
    # the fault strikes beyond 3 keys: a crash shrinks to 4 in fresh workers; a hang is not shrunk (each try costs 1 s)
    assert case["S"] == 4 if name != "hangs" else case["S"] > 3, case
    assert f"--replay '{json.dumps(case, sort_keys=True)}'" in result["reproduce"]
    assert fault.split(" (")[0] in markdown


def test_the_run_goes_on_to_the_targets_after_a_fault(faulty_run) -> None:
    done, report, _ = faulty_run
    numpy = next(t for t in report["targets"] if t["target"] == "numpy")
    assert numpy["conformant"] and numpy["clauses"][0]["dtypes"][0]["examples"] > 0
    assert "numpy (sdpa) conformant" in done.stdout.replace("\n", " ")


def test_the_replay_of_a_fatal_case_names_the_fault_again(faulty_run) -> None:
    _, report, _ = faulty_run
    target = next(t for t in report["targets"] if t["target"].endswith(":segfaults"))
    case = json.dumps(target["clauses"][0]["dtypes"][0]["case"])
    done = kqv("check", f"{FAULTS}:segfaults", "--kind", "sdpa", "--clause", "attention.sdpa", "--replay", case)
    assert done.returncode == 1 and "SIGSEGV" in done.stdout, done.stdout + done.stderr


def test_prints_and_warnings_are_counted_per_clause_not_shown(tmp_path: Path) -> None:
    done = kqv("check", f"{FAULTS}:chatty", *ONE_CLAUSE, "--json", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = json.loads((tmp_path / "r.json").read_text())["targets"][0]["clauses"]
    calls = result["dtypes"][0]["examples"]
    printed = {entry["text"]: entry["count"] for entry in result["printed"]}
    assert printed == {"UserWarning: chatty kernel: the last dimension is not contiguous": calls,
                       "stdout: chatty kernel: launching": calls, "output: chatty kernel: native log line": calls}
    assert done.stdout.count("chatty kernel: launching") == 1  # the summary line, not one per call
    assert "chatty kernel" not in done.stderr


def test_in_process_counts_warnings_and_leaves_the_streams_alone(capfd) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("faults_in_process", FAULTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = check(module.chatty, "sdpa", profile="quick", clauses=["attention.sdpa"], dtypes=("float64",),
                   isolation=False)
    [result] = report.targets[0].clauses
    assert result.status == "passed" and report.targets[0].ran_in == "this process (--no-isolation)"
    assert result.printed == {"UserWarning: chatty kernel: the last dimension is not contiguous":
                              result.dtypes[0].examples}
    assert "chatty kernel: launching" in capfd.readouterr().out  # for pdb, the terminal stays the terminal


def test_a_backend_that_cannot_travel_runs_here_and_the_report_says_why() -> None:
    def local(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        from kqv.reference import scaled_dot_product_attention
        return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)

    report = check(local, "sdpa", profile="quick", clauses=["attention.sdpa"], dtypes=("float64",))
    assert report.conformant
    assert report.targets[0].ran_in.startswith("this process (backend ") and "isolation=False" in \
        report.targets[0].ran_in
    with pytest.raises(IsolationError, match="cannot be sent to a worker process"):
        check(local, "sdpa", profile="quick", clauses=["attention.sdpa"], isolation=True)


CORRECT = """
from kqv.reference import scaled_dot_product_attention


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale){}
"""


def test_a_backend_edited_between_runs_is_loaded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import os

    source = tmp_path / "edited_attention.py"
    source.write_text(CORRECT.format(""))
    monkeypatch.syspath_prepend(str(tmp_path))
    import edited_attention

    options = dict(profile="quick", clauses=["attention.sdpa"], dtypes=("float64",))
    assert check(edited_attention.attention, "sdpa", **options).conformant
    source.write_text(CORRECT.format(" * 2"))  # now broken: the zygote must not keep the old module
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    importlib.reload(edited_attention)
    report = check(edited_attention.attention, "sdpa", **options)
    assert report.targets[0].ran_in == "a worker process" and not report.conformant


def test_executor_for_follows_the_isolation_asked_for() -> None:
    from kqv.conformance.backends import builtin

    backend = builtin("numpy")["sdpa"]
    assert isinstance(executor_for(backend, False), InProcess)
    with pytest.raises(IsolationError, match="cannot be sent"):
        executor_for(type(backend)("lambda", lambda *a: a[0]), True)


@pytest.mark.parametrize("returncode, text", [(-6, "SIGABRT (signal 6)"), (-11, "SIGSEGV (signal 11)"),
                                              (3, "exit status 3"), (-200, "signal 200"),
                                              (None, "an unknown status")])
def test_death_names_the_signal(returncode: int | None, text: str) -> None:
    assert death(returncode) == text
