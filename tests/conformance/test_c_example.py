"""The C example (docs/examples/c) is judged from files: conformant as written, and not conformant with its planted
bug (``-DKQV_EXAMPLE_BUG=1``: causal off by one), which the report names by its clause ``mask.causal.top-left``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kqv.conformance.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "c"
SOURCES = ("run_cases.c", "attention.c", "npy.c")
COMPILER = shutil.which("cc") or shutil.which("gcc")
# What the example declares: float64 and float32, rows without a key give zeros, one (L, S) mask for the batch.
DECLARATION = ["--profile", "quick", "--dtypes", "float64,float32", "--masked-rows", "zeros", "--no-mask-batch"]

pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C compiler (cc or gcc) on PATH: the C example of "
                                                         "docs/examples/c cannot be built")


def build(folder: Path, *defines: str) -> Path:
    program = folder / "run_cases"
    done = subprocess.run([COMPILER, "-O2", "-std=c99", "-Wall", *defines, "-o", str(program),
                           *(str(EXAMPLE / source) for source in SOURCES), "-lm"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return program


def run(program: Path, cases: Path, results: Path) -> None:
    results.mkdir()
    done = subprocess.run([str(program), str(cases), str(results)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and ", 0 cases skipped" in done.stdout, done.stdout + done.stderr


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("c-example") / "cases"
    assert main(["export", str(folder), *DECLARATION]) == 0
    return folder


def _judged(cases: Path, results: Path, report: Path) -> tuple[int, dict[str, dict]]:
    status = main(["judge", str(cases), str(results), "--json", str(report)])
    [target] = json.loads(report.read_text())["targets"]
    return status, {clause["clause"]: clause for clause in target["clauses"]}


def test_the_c_example_conforms(cases: Path, tmp_path: Path) -> None:
    run(build(tmp_path), cases, tmp_path / "results")
    status, clauses = _judged(cases, tmp_path / "results", tmp_path / "report.json")
    assert status == 0, {name: c["message"] for name, c in clauses.items() if c["status"] == "failed"}
    assert clauses["mask.causal.top-left"]["status"] == clauses["mask.additive"]["status"] == "passed"


def test_its_planted_bug_is_named_by_its_clause(cases: Path, tmp_path: Path) -> None:
    run(build(tmp_path, "-DKQV_EXAMPLE_BUG=1"), cases, tmp_path / "results")
    status, clauses = _judged(cases, tmp_path / "results", tmp_path / "report.json")
    assert status == 1
    causal = clauses["mask.causal.top-left"]
    assert causal["status"] == "failed" and "outside the bound" in causal["message"], causal["message"]
    assert clauses["scores.scale.default"]["status"] == "passed"  # no causal mask there: the bug does not show


def test_the_docs_walk_through_the_same_commands() -> None:
    page = (ROOT / "docs" / "other-languages.md").read_text(encoding="utf-8")
    assert " ".join(DECLARATION) in page
    assert f"cc -O2 -std=c99 -o run_cases {' '.join(SOURCES)} -lm" in page
    assert "-DKQV_EXAMPLE_BUG=1" in page
