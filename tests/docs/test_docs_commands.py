"""Every ``kqv`` and ``pytest --kqv-...`` command that the docs and the README show still exists.

A command is taken from a shell block (```` ```bash ````, backslash continuations joined) or from
an inline code span of a page; ``kqv`` commands must parse with the command's own parser, name
built-in targets and clause ids that exist, and the ``--kqv-`` options of a pytest command must be
options of kqv's pytest plugin. Placeholders written in capitals or angle brackets (``N``,
``<target>``) stand for a value and are replaced by one before parsing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import tomllib

import pytest
from docs_pages import DOCS, PAGES, ROOT, without_fenced_blocks

from kqv.conformance.backends import BUILTINS
from kqv.conformance.cli import build_parser
from kqv.spec import CLAUSES

PLACEHOLDERS = {"N": "1", "FILE": "report.json", "TARGET": "numpy", "ID": "attention.accuracy", "<target>": "numpy",
                "<id>": "attention.accuracy"}
SHELL_BLOCK = re.compile(r"^```(?:bash|shell|console)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")


def commands(text: str) -> list[str]:
    """The ``kqv ...`` and ``pytest ...`` command lines of a Markdown page (shell blocks and inline code)."""
    found = []
    for block in SHELL_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*", "", line)  # a comment, which may hold a ';'
            found += [" ".join(part.split()) for part in re.split(r"&&|;|\|", line)]
    prose = without_fenced_blocks(text)  # inline code only
    found += [" ".join(span.split()) for span in INLINE.findall(prose)]
    return [command for command in found if re.match(r"(\S*/)?(kqv|pytest) ", command)]


def _words(command: str) -> list[str] | None:
    words = shlex.split(command, comments=True)
    if "COMMAND" in words or "..." in words:
        return None  # a pattern of commands, not one command
    return [PLACEHOLDERS.get(word, word) for word in words]


def _plugin_parser() -> argparse.ArgumentParser:
    """kqv's pytest options, registered by the plugin's own hook on an argparse stand-in for pytest's parser."""
    from kqv.conformance import pytest_plugin

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # pytest takes no abbreviations

    class Group:
        def addoption(self, *names: str, **options: object) -> None:
            parser.add_argument(*names, **options)

    class Parser:
        def getgroup(self, *args: object, **kwargs: object) -> Group:
            return Group()

    pytest_plugin.pytest_addoption(Parser())
    return parser


def problems(command: str) -> list[str]:
    """What is wrong with one documented command (nothing when it would run)."""
    words = _words(command)
    if words is None:
        return []
    if words[0].rsplit("/", 1)[-1] == "pytest":
        _, unknown = _plugin_parser().parse_known_args(words[1:])
        return [f"{command!r}: pytest plugin has no option {word}" for word in unknown if word.startswith("--kqv")]
    words = [word for word in words if word not in ("--help", "-h")]  # help of the command or of a subcommand
    if len(words) == 1:
        return []
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            arguments = build_parser().parse_args(words[1:])
    except SystemExit:
        return [f"{command!r}: {errors.getvalue().strip().splitlines()[-1]}"]
    found = []
    for target in getattr(arguments, "targets", None) or []:
        if ":" not in target and target not in BUILTINS:
            found.append(f"{command!r}: {target!r} is no built-in backend")
    for clause in getattr(arguments, "clauses", None) or []:
        if clause not in CLAUSES:
            found.append(f"{command!r}: {clause!r} is no clause id")
    return found


DOCUMENTED = [(page.name, command) for page in PAGES for command in commands(page.read_text(encoding="utf-8"))]


def test_the_front_page_and_the_tutorial_show_commands() -> None:
    pages = {page for page, _ in DOCUMENTED}
    assert {"index.md", "tutorial.md", "conformance-matrix.md"} <= pages, pages
    front = [command for page, command in DOCUMENTED if page == "index.md"]
    assert any(command.startswith("kqv check my_attention.py:attention --kind sdpa") for command in front), front


@pytest.mark.parametrize(("page", "command"), DOCUMENTED, ids=[f"{page}:{command[:60]}" for page, command in DOCUMENTED])
def test_documented_command_exists(page: str, command: str) -> None:
    assert not problems(command), problems(command)


@pytest.mark.parametrize("command", [
    "kqv explain attention.accuracy",  # no such subcommand
    "kqv check numpy --frobnicate",  # no such option
    "kqv check --profile nightly",  # no such profile
    "kqv check numpy --clause softmax.jacobain",  # a misspelt clause
    "kqv check torch-sdpa-gpu",  # no such built-in
    "pytest --kqv-target numpy --kqv-profiles ci",  # no such plugin option
    "kqv selfcheck --cases N --seeds 2",
])
def test_a_command_that_is_gone_is_caught(command: str) -> None:
    assert problems(command)


def test_commands_are_found_in_blocks_and_inline_code() -> None:
    text = ("Run `kqv check numpy\n--profile quick` or:\n\n```bash\npip install -e . && kqv check \\\n  --seed N\n"
            "pytest -n auto --kqv-target numpy\n```\n")
    assert commands(text) == ["kqv check --seed N", "pytest -n auto --kqv-target numpy",
                              "kqv check numpy --profile quick"]


def test_the_install_commands_of_the_front_page_name_this_project_and_its_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = set(project.get("optional-dependencies", {}))
    text = (DOCS / "index.md").read_text(encoding="utf-8") + (DOCS / "contributing.md").read_text(encoding="utf-8")
    installs = re.findall(r"pip install (?:-q )?-e '?\.(?:\[([\w,]+)\])?'?", text)
    assert installs, "the front page shows no install command"
    assert project["name"] == "kqv"
    for named in installs:
        assert set(filter(None, named.split(","))) <= extras, (named, extras)
