"""``kqv export`` then ``kqv judge``: the reference's outputs written without kqv conform; missing and malformed
outputs are reported per case; usage errors exit 2. Clauses: every sdpa clause judged from outputs."""

from __future__ import annotations

import ast
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kqv.conformance.cli import main
from kqv.conformance.export import IN_MEMORY
from kqv.conformance.export.forms import POSITIONAL
from kqv.conformance.export.judge import judge
from kqv.conformance.export.manifest import schema
from kqv.conformance.export.schema import problem

SCRIPT = Path(__file__).resolve().parent / "judge_numpy_script.py"


def write_reference_outputs(directory: Path, results: Path) -> None:
    """The reference's outputs, written by a script that does not import kqv."""
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(SCRIPT.read_text()))
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(SCRIPT.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "json", "sys", "pathlib", "numpy", "annotations", "Path"}, imported
    done = subprocess.run([sys.executable, str(SCRIPT), str(directory), str(results)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An export of the default declaration (quick profile) and the reference's outputs for it."""
    root = tmp_path_factory.mktemp("export")
    assert main(["export", str(root / "cases"), "--profile", "quick"]) == 0
    write_reference_outputs(root / "cases", root / "results")
    return root / "cases", root / "results"


def test_the_reference_outputs_written_without_kqv_conform(exported, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cases, results = exported
    assert main(["judge", str(cases), str(results), "--json", str(tmp_path / "r.json"),
                 "--markdown", str(tmp_path / "r.md")]) == 0
    out = capsys.readouterr().out
    assert "kqv judge (quick profile, seed 0): conformant" in out
    report = json.loads((tmp_path / "r.json").read_text())
    [target] = report["targets"]
    statuses = {c["clause"]: c["status"] for c in target["clauses"]}
    assert statuses["attention.sdpa"] == statuses["attention.permutation.keys"] == "passed"
    assert statuses["output.linear-in-value"] == statuses["mask.causal.independence"] == "passed"
    assert all(statuses[clause] == "skipped" for clause in IN_MEMORY)
    assert target["problems"] == [] and target["conventions"]["masked_rows"]["value"] == "zeros"
    assert "| [`attention.sdpa`](" in (tmp_path / "r.md").read_text()


def test_the_manifest_follows_its_schema_and_names_every_file(exported) -> None:
    cases, _ = exported
    manifest = json.loads((cases / "manifest.json").read_text())
    assert problem(manifest, schema()) is None
    case = manifest["cases"][0]
    for entry in (*case["inputs"].values(), *(case["outputs"]["output"][k] for k in ("expected", "bound"))):
        path = cases / (entry["file"] if isinstance(entry, dict) else entry)
        assert np.load(path, allow_pickle=False).dtype != object
    ids = {c["id"] for c in manifest["cases"]}
    assert all(set(example["cases"]) <= ids for example in manifest["examples"])
    related = [e for e in manifest["examples"] if e["clause"] == "attention.permutation.queries"]
    assert related and all(len(e["cases"]) == 2 and "Permuting the query rows" in e["relation"] for e in related)
    index = (cases / "cases.tsv").read_text().splitlines()
    assert index[1].split("\t") == ["# id", "dtype", "query", "key", "value", "attn_mask", "is_causal", "scale",
                                    "further"]
    assert len(index) == 2 + len(manifest["cases"])


@pytest.mark.parametrize(("change", "found"), [
    (lambda m: m["cases"][0].update(dtype="float8"), "cases[0].dtype: expected one of"),
    (lambda m: m["cases"][1]["outputs"]["output"].pop("bound"), "cases[1].outputs.output: missing the field 'bound'"),
    (lambda m: m["examples"][0].update(cases=["c1"]), "examples[0].cases[0]: expected a string matching"),
    (lambda m: m.update(kind="rnn"), "kind: expected one of sdpa, mha, pe"),
    (lambda m: m.update(extra=1), "extra: not a field of the format"),
])
def test_a_broken_manifest_is_a_usage_error_naming_the_field(exported, tmp_path: Path, change, found: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cases, results = exported
    manifest = json.loads((cases / "manifest.json").read_text())
    change(manifest)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit) as stopped:
        main(["judge", str(tmp_path), str(results)])
    assert stopped.value.code == 2
    assert found in capsys.readouterr().err


def _cases(manifest: dict, count: int, **wanted) -> list[dict]:
    chosen = [c for c in manifest["cases"] if all(c["outputs"]["output"][k] == v for k, v in wanted.items())
              and "attention.sdpa" in c["clauses"]]
    assert len(chosen) >= count
    return chosen[:count]


def test_missing_and_malformed_outputs_are_reported_per_case(exported, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cases, results = exported
    broken = tmp_path / "broken"
    shutil.copytree(results, broken)
    manifest = json.loads((cases / "manifest.json").read_text())
    missing, shape, nan, pickled, garbage = _cases(manifest, 5, dtype="float32", finite=True)
    [dtype] = _cases(manifest, 1, dtype="float64")
    (broken / f"{missing['id']}.npy").unlink()
    good = np.load(broken / f"{shape['id']}.npy")
    np.save(broken / f"{shape['id']}.npy", good[..., :1, :].repeat(good.shape[-2] + 1, axis=-2))
    np.save(broken / f"{dtype['id']}.npy", np.load(broken / f"{dtype['id']}.npy").astype(np.float32))
    poisoned = np.load(broken / f"{nan['id']}.npy")
    poisoned.flat[0] = np.nan
    np.save(broken / f"{nan['id']}.npy", poisoned)
    np.save(broken / f"{pickled['id']}.npy", np.array([{"output": 1}], dtype=object), allow_pickle=True)
    (broken / f"{garbage['id']}.npy").write_bytes(b"not an array")

    assert main(["judge", str(cases), str(broken), "--json", str(tmp_path / "r.json"),
                 "--markdown", str(tmp_path / "r.md")]) == 1
    out = capsys.readouterr().out
    assert "outputs missing, malformed or not numbers, by case" in out and "Traceback" not in out
    [target] = json.loads((tmp_path / "r.json").read_text())["targets"]
    problems = {p["case"]: p["problem"] for p in target["problems"]}
    assert "is missing" in problems[missing["id"]]
    assert "has shape" in problems[shape["id"]] and "where the case needs" in problems[shape["id"]]
    assert "has dtype <f4 where the case needs float64 (<f8)" in problems[dtype["id"]]
    assert "NaN or inf" in problems[nan["id"]]
    assert "not a readable .npy file" in problems[pickled["id"]] and "not a readable" in problems[garbage["id"]]
    sdpa = next(c for c in target["clauses"] if c["clause"] == "attention.sdpa")
    assert sdpa["status"] == "failed" and "examples fail" in sdpa["message"]
    assert sdpa["reproduce"] == f"kqv judge {cases} {broken} --clause attention.sdpa"
    assert "## Outputs missing, malformed or not numbers" in (tmp_path / "r.md").read_text()


def test_an_empty_results_folder_fails_every_example_without_a_crash(exported, tmp_path: Path) -> None:
    cases, _ = exported
    report = judge(cases, tmp_path, clauses=["attention.sdpa", "attention.permutation.keys"])
    [target] = report.targets
    assert not report.conformant and len(target.problems) == len({p.case for p in target.problems})
    assert all(c.status == "failed" and "is missing" in c.message for c in target.clauses)


def test_an_export_of_another_kqv_stops_the_judge(exported, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cases, results = exported
    stale = tmp_path / "stale"
    stale.mkdir()
    manifest = json.loads((cases / "manifest.json").read_text())
    for case in manifest["cases"]:
        case["key"] = "0" * 64
    (stale / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit) as stopped:
        main(["judge", str(stale), str(results), "--clause", "attention.sdpa"])
    assert stopped.value.code == 2
    assert "another version of kqv or NumPy; export it again" in capsys.readouterr().err


def test_bfloat16_float16_nan_rows_and_the_lse_round_trip(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    assert main(["export", str(cases), "--profile", "quick", "--dtypes", "bfloat16,float16", "--lse", "--gqa",
                 "--masked-rows", "nan", "--clause", "lse.definition", "--clause", "mask.fully-masked-row"]) == 0
    manifest = json.loads((cases / "manifest.json").read_text())
    query = manifest["cases"][0]["inputs"]["query"]
    assert np.load(cases / query["file"]).dtype == np.uint16 and query["dtype"] in ("bfloat16", "float16")
    assert any("lse" in c["outputs"] for c in manifest["cases"])
    write_reference_outputs(cases, tmp_path / "results")
    report = judge(cases, tmp_path / "results")
    assert report.conformant, report.to_json()
    statuses = {c.clause: c.status for c in report.targets[0].clauses}
    assert statuses == {"lse.definition": "passed", "mask.fully-masked-row": "passed"}


@pytest.mark.parametrize(("kind", "clauses"), [("mha", ["mha.concat", "mask.fully-masked-row"]),
                                               ("pe", ["pe.sinusoid", "pe.odd-d-model"])])
def test_mha_and_pe_round_trip(kind: str, clauses: list[str], tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    assert main(["export", str(cases), "--kind", kind, "--profile", "quick", "--dtypes", "float32",
                 *(word for clause in clauses for word in ("--clause", clause))]) == 0
    assert not (cases / "cases.tsv").exists()  # the index is sdpa's
    write_reference_outputs(cases, tmp_path / "results")
    report = judge(cases, tmp_path / "results")
    assert report.conformant and {c.clause for c in report.targets[0].clauses} == set(clauses)
    assert all(c.status == "passed" for c in report.targets[0].clauses)


@pytest.mark.parametrize(("arguments", "message"), [
    (["export", "{tmp}/full", "--profile", "quick"], "exists and is not an empty directory"),
    (["export", "{tmp}/new", "--kind", "pe", "--shapes", "6"], "shapes: a budget of shapes applies to kind sdpa"),
    (["export", "{tmp}/new", "--clause", "mask.boo"], "did you mean 'mask.bool'"),
    (["export", "{tmp}/new", "--dtypes", "float8"], "dtypes: expected one of"),
    (["export", "{tmp}/new", "--profile", "slow"], "invalid choice: 'slow'"),
    (["export", "{tmp}/new", "--backward"], "unrecognized arguments: --backward"),
    (["judge", "{tmp}/new", "{tmp}"], "DIR: {tmp}/new is not a directory"),
    (["judge", "{tmp}", "{tmp}"], "holds no manifest.json"),
    (["judge", "{tmp}/full"], "the following arguments are required: RESULTS"),
])
def test_usage_errors_exit_2_with_a_message(arguments: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("kept")
    with pytest.raises(SystemExit) as stopped:
        main([word.format(tmp=tmp_path) for word in arguments])
    assert stopped.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert (tmp_path / "full" / "mine.txt").read_text() == "kept" and not (tmp_path / "new").exists()


def test_gradient_clauses_are_left_out_and_said_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "out"), "--profile", "quick", "--clause", "gradient.value"]) == 0
    assert "1 clause left out" in capsys.readouterr().out
    [skipped] = json.loads((tmp_path / "out" / "manifest.json").read_text())["skipped"]
    assert skipped["clause"] == "gradient.value" and "kqv check --backward" in skipped["reason"]


def test_the_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "kqv.conformance.cli", "judge", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("kqv judge: error: DIR: "), done.stderr


def test_judge_usage_errors_on_an_export(exported, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases, results = exported
    for words, message in ((["judge", str(cases), str(tmp_path / "none")], "RESULTS: "),
                           (["judge", str(cases), str(results), "--clause", "pe.sinusoid"],
                            "no sdpa check enforces pe.sinusoid")):
        with pytest.raises(SystemExit) as stopped:
            main(words)
        assert stopped.value.code == 2
        assert message in capsys.readouterr().err


NAMED = {"heads_reversed": "heads concatenated in reverse", "concatenated_halves": "concatenated halves"}


def run_on_cases(fn, directory: Path, results: Path) -> None:
    """Call ``fn`` on every case of an export, from the files alone, and write its outputs."""
    manifest = json.loads((directory / "manifest.json").read_text())
    results.mkdir()
    for case in manifest["cases"]:
        call = {name: np.load(directory / entry["file"]) for name, entry in case["inputs"].items()} | case["options"]
        positional = [call.pop(name) for name in POSITIONAL[manifest["kind"]]]
        np.save(results / case["outputs"]["output"]["file"], fn(*positional, **call))


@pytest.mark.parametrize(("kind", "name"), [("sdpa", "global_max"), ("sdpa", "mask_as_minus_1e4"),
                                            ("sdpa", "naive_exp"), ("sdpa", "always_float64"),
                                            ("mha", "heads_reversed"), ("pe", "concatenated_halves")])
def test_a_broken_implementation_fails_its_clause_from_files_as_in_kqv_check(kind: str, name: str,
                                                                              tmp_path: Path) -> None:
    # sdpa: a metamorphic clause (batch entries poisoned with NaN, masked keys made huge), the stable softmax, a
    # wrong dtype; mha: the heads concatenated in reverse; pe: the [sin | cos] halves of many code bases.
    from kqv.conformance import Declaration
    from kqv.conformance.export import export

    fn = getattr(importlib.import_module(f"broken.{kind}"), name)
    export(tmp_path / "cases", Declaration(kind=kind, **fn.declaration), "quick", 0, [fn.breaks])
    run_on_cases(fn, tmp_path / "cases", tmp_path / "results")
    [result] = judge(tmp_path / "cases", tmp_path / "results").targets[0].clauses
    assert result.clause == fn.breaks and result.status == "failed", result.message
    if name in NAMED:  # the diagnosis names it from the failing case's output, read from the files
        assert NAMED[name] in [named["name"] for named in result.departures], result.departures
