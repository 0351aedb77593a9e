"""``kqv check``: the matrix, the exit statuses, the JSON and Markdown reports, usage errors, replay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kqv.conformance.cli import main
from kqv.spec import CLAUSES

BROKEN = Path(__file__).resolve().parent / "broken"


def kqv(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kqv.conformance.cli", *arguments], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def all_builtins(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("report")
    # float64 alone (the one dtype of every built-in, numpy pe included): JAX compiles every new shape,
    # and each dtype of each backend is checked elsewhere; so is each backward (--no-backward).
    done = kqv("check", "--profile", "quick", "--dtypes", "float64", "--no-backward", "--json", str(out / "r.json"),
               "--markdown", str(out / "r.md"))
    return done, json.loads((out / "r.json").read_text()), (out / "r.md").read_text()


def test_no_target_checks_every_builtin_and_prints_the_matrix(all_builtins) -> None:
    done, report, _ = all_builtins
    assert done.returncode == 0, done.stdout + done.stderr
    for title in ("sdpa: clauses by backend", "mha: clauses by backend", "pe: clauses by backend", "conventions"):
        assert title in done.stdout
    names = {(t["target"], t["kind"]) for t in report["targets"]}
    assert {("numpy", "sdpa"), ("numpy", "mha"), ("numpy", "pe"), ("torch-sdpa-cpu", "sdpa"),
            ("torch-mha-cpu", "mha")} <= names
    unavailable = {u["target"]: u["reason"] for u in report["unavailable"]}
    import torch

    from kqv.conformance.backends import BUILTINS

    assert set(BUILTINS) == {t["target"] for t in report["targets"]} | set(unavailable)  # none dropped
    if not torch.cuda.is_available():
        for name in ("torch-sdpa-cuda", "torch-sdpa-cuda-flash", "torch-sdpa-cuda-efficient", "torch-sdpa-cuda-cudnn"):
            assert "CUDA" in unavailable[name]
            assert name in done.stdout  # reported, not silently dropped
    assert "Traceback" not in done.stderr


def test_no_target_with_a_clause_lists_the_backends_it_cannot_check(tmp_path: Path) -> None:
    # attention.accuracy is an sdpa clause: the mha and pe backends are named as not checked, not dropped.
    done = kqv("check", "--profile", "quick", "--dtypes", "float64", "--clause", "attention.accuracy",
               "--json", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert {t["kind"] for t in report["targets"]} == {"sdpa"}
    not_checked = {(u["target"], u["kind"]): u["reason"] for u in report["unavailable"]}
    for target_kind in (("numpy", "mha"), ("numpy", "pe"), ("torch-mha-cpu", "mha")):
        assert not_checked[target_kind] == f"--clause attention.accuracy has no {target_kind[1]} check"
        assert f"not checked: {target_kind[0]} ({target_kind[1]})" in done.stdout


def test_json_report_has_the_documented_fields(all_builtins) -> None:
    _, report, _ = all_builtins
    assert report["conformant"] is True
    for target in report["targets"]:
        assert {"target", "kind", "conformant", "conventions", "clauses"} <= set(target)
        assert isinstance(target["conformant"], bool)
        for result in target["clauses"]:
            assert result["clause"] in CLAUSES
            assert result["status"] in ("passed", "failed", "skipped", "xfailed", "xpassed")
            assert isinstance(result["message"], str) and result["message"]
            assert result["link"].endswith(f"#clause-{result['clause']}")
    sdpa = next(t for t in report["targets"] if t["target"] == "torch-sdpa-cpu")
    assert sdpa["conventions"]["masked_rows"] == {"value": "zeros", "source": "declared"}
    assert "torch" in report["versions"] and "numpy" in report["versions"]


def test_markdown_report_has_the_matrix_and_the_conventions(all_builtins) -> None:
    _, report, markdown = all_builtins
    assert "| clause | numpy | torch-sdpa-cpu |" in markdown
    assert "## Conventions" in markdown
    assert "[`mask.bool`](" in markdown


def test_a_broken_target_exits_1_naming_the_clause(tmp_path: Path) -> None:
    done = kqv("check", f"{BROKEN / 'sdpa.py'}:bool_mask_inverted", "--kind", "sdpa", "--profile", "quick",
               "--json", str(tmp_path / "r.json"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout and "mask.bool" in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    [target] = report["targets"]
    failed = {c["clause"]: c for c in target["clauses"] if c["status"] == "failed"}
    assert "mask.bool" in failed
    assert report["conformant"] is False and target["conformant"] is False
    result = failed["mask.bool"]
    assert "counterexample" in result and "attn_mask" in result["counterexample"]
    assert result["reproduce"].startswith("kqv check ") and "--replay" in result["reproduce"]


def test_the_reproduce_command_reproduces_the_failure(tmp_path: Path) -> None:
    kqv("check", f"{BROKEN / 'sdpa.py'}:causal_strict", "--kind", "sdpa", "--profile", "quick",
        "--clause", "mask.causal.top-left", "--json", str(tmp_path / "r.json"))
    command = json.loads((tmp_path / "r.json").read_text())["targets"][0]["clauses"][0]["reproduce"]
    import shlex

    words = shlex.split(command)
    assert words[:2] == ["kqv", "check"]
    again = kqv(*words[1:])
    assert again.returncode == 1, again.stdout + again.stderr
    assert "mask.causal.top-left" in again.stdout and "replay" in again.stdout


def test_declaration_options_reach_a_function_target() -> None:
    done = kqv("check", f"{BROKEN / 'sdpa.py'}:nan_rows_declared_zeros", "--kind", "sdpa", "--profile", "quick",
               "--clause", "mask.fully-masked-row", "--masked-rows", "nan")
    assert done.returncode == 0, done.stdout + done.stderr  # under its true convention it conforms
    assert "nan (declared)" in done.stdout


@pytest.mark.parametrize(("arguments", "message"), [
    (["check", "no-such-backend"], "no-such-backend"),
    (["check", "numpi"], "did you mean 'numpy'"),
    (["check", "missing_file.py:fn"], "does not exist"),
    (["check", "no_such_module_kqv:fn"], "cannot import module 'no_such_module_kqv'"),
    (["check", "math:no_such_function"], "has no attribute 'no_such_function'"),
    (["check", "math:pi"], "not a function"),
    (["check", "numpy", "--kind", "sdpa", "--clause", "mask.boo"], "did you mean 'mask.bool'"),
    (["check", "numpy", "--kind", "pe", "--clause", "mask.bool"], "no pe check enforces mask.bool"),
    (["check", "numpy", "--replay", "{}"], "--replay"),
    (["check", "numpy", "--clause", "mask.bool", "--replay", "not json"], "not valid JSON"),
    (["check", "torch-sdpa-cpu", "--kind", "pe"], "has no pe kind"),
    (["check", "numpy", "--dtypes", "float8"], "dtypes: expected one of"),
    (["check", "numpy", "--batch-dims", "3"], "batch_dims"),
    (["check", "numpy", "--profile", "slow"], "invalid choice: 'slow'"),
    (["check", "numpy", "--masked-rows", "ones"], "invalid choice: 'ones'"),
    (["check", "numpy", "--seed", "-1"], "expected an integer >= 0"),
    (["check", "math:sqrt", "--device", "cuda"], "--arrays torch"),
    (["check", "--backward", "math:sqrt"], "needs the function TARGET it differentiates"),
    (["check", "numpy", "--backward", "math:sqrt"], "not to the built-in backend 'numpy'"),
    (["check", "math:sqrt", "--backward", "math:no_such_backward"], "--backward: 'math' has no attribute"),
    (["check", "math:sqrt", "--backward"], "numpy.ndarray arrays cannot be differentiated"),
    (["check", "math:sqrt", "--kind", "pe", "--backward"], "the gradients are checked for kinds sdpa and mha"),
])
def test_usage_errors_exit_2_with_a_message_and_no_traceback(arguments: list[str], message: str) -> None:
    done = kqv(*arguments)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert message in done.stderr, done.stderr


def test_a_target_whose_import_fails_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import no_such_module_at_all\n")
    done = kqv("check", f"{tmp_path / 'bad.py'}:fn")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "ModuleNotFoundError" in done.stderr and "bad.py" in done.stderr


def test_a_backend_object_in_a_file_brings_its_declaration(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from kqv.conformance import Backend, Declaration\n"
        "from kqv.conformance.backends.numpy_reference import sdpa\n"
        "backend = Backend('mine', sdpa, Declaration(dtypes=('float32',), masked_rows='zeros', float_mask=False))\n")
    done = kqv("check", f"{tmp_path / 'mine.py'}:backend", "--profile", "quick", "--clause", "mask.additive",
               "--clause", "mask.bool", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skip" in done.stdout and "pass" in done.stdout


def test_in_process_main_returns_the_exit_status(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check", "numpy", "--kind", "pe", "--profile", "quick"]) == 0
    assert "pe.sinusoid" in capsys.readouterr().out
    assert main(["check", f"{BROKEN / 'pe.py'}:concatenated_halves", "--kind", "pe", "--profile", "quick",
                 "--json", str(tmp_path / "r.json")]) == 1
    results = {c["clause"]: c for c in json.loads((tmp_path / "r.json").read_text())["targets"][0]["clauses"]}
    assert 'matches "concatenated halves"' in results["pe.sinusoid"]["message"]
    assert [d["name"] for d in results["pe.sinusoid"]["departures"]] == ["concatenated halves"]


def test_a_backward_callable_is_a_second_target(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from kqv.reference import scaled_dot_product_attention, scaled_dot_product_attention_backward\n"
        "def attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):\n"
        "    return scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale).astype(q.dtype)\n"
        "def attention_backward(q, k, v, do, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, twice=1):\n"
        "    g = scaled_dot_product_attention_backward(q, k, v, do, attn_mask, dropout_p, is_causal, scale)\n"
        "    return g.query.astype(q.dtype), twice * g.key.astype(k.dtype), g.value.astype(v.dtype)\n"
        "def doubled_backward(*args, **kwargs):\n"
        "    return attention_backward(*args, **kwargs, twice=2)\n")
    target = f"{tmp_path / 'mine.py'}:attention"
    done = kqv("check", target, "--backward", f"{tmp_path / 'mine.py'}:attention_backward", "--profile", "quick",
               "--dtypes", "float32", "--clause", "gradient.key", "--clause", "gradient.value", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr  # in a worker process, loaded again from its recipe
    done = kqv("check", target, "--backward", f"{tmp_path / 'mine.py'}:doubled_backward", "--profile", "quick",
               "--dtypes", "float32", "--clause", "gradient.key", "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    [result] = json.loads((tmp_path / "r.json").read_text())["targets"][0]["clauses"]
    assert "dK (the gradient of the key)" in result["message"]
    assert f"--backward {tmp_path / 'mine.py'}:doubled_backward" in result["reproduce"]
