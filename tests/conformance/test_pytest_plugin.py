"""The pytest plugin: inert without --kqv-target; with it, one test per clause, in any directory."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

BROKEN = Path(__file__).resolve().parent / "broken"


def pytest_in(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *arguments],
                          capture_output=True, text=True, cwd=directory, timeout=600)


def test_runs_one_test_per_clause_in_a_directory_without_tests(tmp_path: Path) -> None:
    done = pytest_in(tmp_path, "--kqv-target", "numpy", "--kqv-kind", "pe", "--kqv-profile", "quick",
                     "--junitxml", str(tmp_path / "junit.xml"))
    assert done.returncode == 0, done.stdout + done.stderr
    cases = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    names = {case.get("name") for case in cases}
    assert {"pe.sinusoid", "pe.odd-d-model", "pe.bounded", "pe.wavelengths", "pe.rotation",
            "impl.determinism"} == names
    assert "6 passed" in done.stdout


def test_a_broken_target_fails_its_clause_in_junit_xml(tmp_path: Path) -> None:
    done = pytest_in(tmp_path, "--kqv-target", f"{BROKEN / 'sdpa.py'}:explicit_scale_ignored", "--kqv-kind", "sdpa",
                     "--kqv-profile", "quick", "-k", "scale", "--junitxml", str(tmp_path / "junit.xml"))
    assert done.returncode == 1, done.stdout + done.stderr
    failures = {case.get("name"): case.find("failure") for case in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    assert failures["scores.scale.explicit"] is not None
    text = failures["scores.scale.explicit"].text or failures["scores.scale.explicit"].get("message")
    assert "counterexample (shrunk)" in text and "--replay" in text
    assert failures["scores.scale.default"] is None


def test_skips_and_declarations_are_reported(tmp_path: Path) -> None:
    done = pytest_in(tmp_path, "--kqv-target", "numpy", "--kqv-kind", "sdpa", "--kqv-profile", "quick",
                     "--kqv-declare", "float_mask=false", "--kqv-declare", "dtypes=float32", "-k", "additive or bool",
                     "-rs")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "declares no float masks" in done.stdout
    assert "kqv conventions" in done.stdout


def test_is_inert_without_its_option(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    done = pytest_in(tmp_path, "-q")
    assert done.returncode == 0 and "1 passed" in done.stdout
    assert "kqv" not in done.stdout


def test_bad_plugin_options_are_usage_errors(tmp_path: Path) -> None:
    done = pytest_in(tmp_path, "--kqv-target", "no-such-backend")
    assert done.returncode == 4 and "kqv: target 'no-such-backend'" in done.stderr
    done = pytest_in(tmp_path, "--kqv-target", "numpy", "--kqv-declare", "masked_rows")
    assert done.returncode == 4 and "expected NAME=VALUE" in done.stderr


def test_a_known_deviations_file_marks_its_clauses(tmp_path: Path) -> None:
    (tmp_path / "xfails.toml").write_text('[[departure]]\nclause = "pe.sinusoid"\nreason = "thought wrong"\n\n'
                                          '[[departure]]\nclause = "pe.bounded"\nreason = "flaky"\nstrict = false\n')
    done = pytest_in(tmp_path, "--kqv-target", "numpy", "--kqv-kind", "pe", "--kqv-profile", "quick",
                     "--kqv-expected-failures", str(tmp_path / "xfails.toml"), "-k", "sinusoid or bounded")
    assert done.returncode == 1, done.stdout + done.stderr  # the strict entry passed: a failure
    assert "expected to fail (thought wrong" in done.stdout and "1 failed, 1 passed" in done.stdout
