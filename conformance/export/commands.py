"""The commands ``kqv export DIR`` and ``kqv judge DIR RESULTS``: their options, and running them.

Exit status of ``kqv judge``, as of ``kqv check``: 0 conformant, 1 a clause fails (a missing or
malformed output fails the clauses whose examples call its case), 2 a usage error (a folder that
holds no export, a RESULTS that is no folder, an unknown clause). ``kqv export`` exits 0, or 2.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from ..options import RUN_OPTIONS, add_declaration_options, from_namespace


def add_commands(commands: Any) -> None:
    """Add ``export`` and ``judge`` to the subcommands of ``kqv``."""
    export = commands.add_parser(
        "export", help="write the cases kqv check would draw as plain files, for an implementation in another language",
        description="Write the cases kqv check would draw for a declaration into DIR (new or empty): every clause "
                    "judged from outputs, at every dtype declared. Each case is one call: its inputs as .npy files "
                    "(bfloat16 as its uint16 bit pattern), its options, the float64 expected output and the bound of "
                    "each element, listed in DIR/manifest.json (and DIR/cases.tsv, one call a line); the gradients are "
                    "not exported (kqv check --backward checks them). Run the "
                    "implementation on each case, write RESULTS/<case id>.npy, then kqv judge DIR RESULTS. "
                    "Exit status: 0 written, 2 usage error.")
    export.add_argument("directory", metavar="DIR", help="the folder to write (new, or empty)")
    for name in ("kind", "profile", "seed"):
        RUN_OPTIONS[name].add_to(export)
    export.add_argument("--clause", action="append", dest="clauses", metavar="ID",
                        help="export only this clause id (repeatable)")
    add_declaration_options(export, "what the implementation supports and which conventions it follows: the cases "
                                     "are drawn within it, as kqv check draws them", leave_out=("backward",))
    judge = commands.add_parser(
        "judge", help="judge the outputs an implementation wrote for the cases of kqv export",
        description="Judge the outputs in RESULTS (one <case id>.npy per case of DIR/manifest.json, in the dtype of "
                    "the case) clause by clause, with the report of kqv check. Exit status: 0 conformant, 1 a clause "
                    "fails (a missing or malformed output fails the examples that call its case), 2 usage error.")
    judge.add_argument("directory", metavar="DIR", help="the folder kqv export wrote")
    judge.add_argument("results", metavar="RESULTS", help="the folder the implementation wrote its outputs to")
    judge.add_argument("--clause", action="append", dest="clauses", metavar="ID",
                       help="judge only this clause id (repeatable)")
    judge.add_argument("--name", help="the implementation's name in the report (default: the name of RESULTS)")
    judge.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE")
    judge.add_argument("--markdown", metavar="FILE", help="write the report as Markdown to FILE")


def _clauses(clauses: list[str] | None, kind: str) -> None:
    """Raise a ValueError naming an unknown clause id or one that no check of ``kind`` enforces."""
    from ..runner import selected_checks

    try:
        selected_checks(kind, clauses)
    except KeyError as error:
        raise ValueError(f"--clause: {error.args[0]}") from None


def run_export(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..declaration import Declaration
    from ..progress import reporter
    from .draw import export

    kind = arguments.kind or "sdpa"
    try:
        _clauses(arguments.clauses, kind)
        declaration = Declaration(kind=kind, **from_namespace(arguments))
        summary = export(Path(arguments.directory), declaration, arguments.profile, arguments.seed, arguments.clauses,
                         reporter())
    except (TypeError, ValueError) as error:
        parser.exit(2, f"kqv export: error: {error}\n")
    listed = summary.directory / ("cases.tsv" if kind == "sdpa" else "manifest.json")
    print(f"kqv export: wrote {summary.cases} cases ({summary.examples} examples of {summary.clauses} clauses) to "
          f"{summary.directory}: {summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s. Run the implementation on "
          f"each case ({listed}), then: kqv judge {shlex.quote(str(summary.directory))} RESULTS")
    if summary.skipped:
        print(f"kqv export: {summary.skipped} clause{'s' if summary.skipped > 1 else ''} left out, at one dtype at "
              f"least (manifest.json, 'skipped', says why)")
    return 0


def run_judge(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from rich.console import Console

    from ..progress import reporter
    from ..report.markdown import render
    from ..report.terminal import show
    from .judge import judge
    from .manifest import ManifestError, read

    directory, results = Path(arguments.directory), Path(arguments.results)
    try:
        _clauses(arguments.clauses, read(directory)["kind"])
        report = judge(directory, results, arguments.clauses, arguments.name, reporter())
    except (ManifestError, ValueError) as error:
        parser.exit(2, f"kqv judge: error: {error}\n")
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=120)
    show(report, console, "kqv judge")
    for path, text in ((arguments.json, report.to_json), (arguments.markdown, lambda: render(report))):
        if path:
            Path(path).write_text(text(), encoding="utf-8")
    return 0 if report.conformant else 1
