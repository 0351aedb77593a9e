"""The distribution builds, installs in a fresh virtual environment and imports; the README and CI agree."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_installs_in_a_fresh_venv_and_imports(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT, cwd=tmp_path)
    [wheel] = wheels.glob("kqv-*.whl")
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    script = (
        "import kqv.spec, kqv.reference, kqv.conformance, pathlib;"
        "from kqv.conformance.export.manifest import schema;"  # package data: the schema of kqv export's manifest
        "print(len(kqv.spec.CLAUSES));"
        "print(schema()['title'].replace(' ', '-'));"
        "print(pathlib.Path(kqv.reference.__file__).parent.parent)"
    )
    clause_count, title, location = _run(python, "-c", script, cwd=tmp_path).split()
    assert int(clause_count) > 0 and title == "kqv-export-manifest"
    assert Path(location).resolve().is_relative_to(environment.resolve()), location


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd "))]
    assert len(commands) == 1, commands
    assert commands[0] in readme
    assert "pytest" in commands[0] and "torch==2.13.0" in commands[0]


def test_readme_main_job_command_is_present() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -q torch==2.13.0 && .venv/bin/pip install -q -e . && .venv/bin/kqv check" in readme
