"""The ``kqv`` command line.

``kqv check [TARGET ...]`` checks attention implementations clause by clause (no TARGET: every
built-in backend available here); ``kqv export DIR`` writes the cases of a check as files for an
implementation in another language, and ``kqv judge DIR RESULTS`` judges the outputs it wrote
(:mod:`kqv.conformance.export`); ``kqv selfcheck`` verifies the spec's derivations and the
reference against its oracle. Exit status: 0 when everything conforms (or passes), 1 when a clause
fails, 2 for usage errors and targets that cannot be loaded.
"""

from __future__ import annotations

import argparse
import sys

from .export.commands import add_commands, run_export, run_judge
from .options import RUN_OPTIONS, add_declaration_options, backward_target, from_namespace, integer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kqv", description="Specification, reference and conformance "
                                     "suite for transformer attention.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    from .backends import BUILTINS

    check = commands.add_parser(
        "check", help="check attention implementations clause by clause",
        description="Check attention implementations clause by clause. TARGET is a built-in backend "
                    f"({', '.join(BUILTINS)}), module:function, or "
                    "path/to/file.py:function; the function may be a plain callable following the --kind contract "
                    "or a kqv.conformance.Backend. With no TARGET, every built-in backend available here is checked. "
                    "Exit status: 0 every target conforms, 1 a clause fails, 2 usage error or a target that cannot "
                    "be loaded.")
    check.add_argument("targets", nargs="*", metavar="TARGET", help="what to check (default: every built-in backend)")
    for name in ("kind", "profile", "seed"):
        RUN_OPTIONS[name].add_to(check)
    check.add_argument("--clause", action="append", dest="clauses", metavar="ID",
                       help="check only this clause id (repeatable)")
    check.add_argument("--replay", metavar="CASE_JSON", help="run the --clause check on this one case (the JSON "
                       "printed by a failure)")
    check.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE")
    check.add_argument("--markdown", metavar="FILE", help="write the report as Markdown to FILE")
    for name in ("arrays", "jobs", "isolation", "timeout", "expected-failures"):
        RUN_OPTIONS[name].add_to(check)
    add_declaration_options(check)
    add_commands(commands)
    selfcheck = commands.add_parser("selfcheck", help="check the spec's derivations and the reference "
                                    "against the mpmath oracle and torch")
    selfcheck.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    selfcheck.add_argument("--cases", type=integer(1), default=50,
                           help="random cases per numerical check (default 50)")
    return parser


def _selfcheck(arguments: argparse.Namespace) -> int:
    from kqv.conformance.selfcheck import run

    results = run(seed=arguments.seed, cases=arguments.cases)
    width = max(len(result.clause) for result in results)
    for result in results:
        print(f"{result.status:<7} {result.clause:<{width}}  {result.message}")
    counts = {status: sum(r.status == status for r in results) for status in ("passed", "failed", "skipped")}
    print(f"selfcheck: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


def _check(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from rich.console import Console

    from .threads import available_cores
    from .loading import LoadError
    from .progress import reporter
    from .report.markdown import render
    from .report.terminal import show
    from .session import UsageError, plan

    overrides, backward = backward_target(from_namespace(arguments))
    try:
        session = plan(arguments.targets, kind=arguments.kind, profile=arguments.profile, seed=arguments.seed,
                       clauses=arguments.clauses, overrides=overrides, backward=backward, arrays=arguments.arrays,
                       replay=arguments.replay, isolation=arguments.isolation, timeout=arguments.timeout,
                       jobs=arguments.jobs or available_cores(), expected_failures=arguments.expected_failures)
    except (UsageError, LoadError) as error:
        parser.exit(2, f"kqv check: error: {error}\n")
    report = session.run(reporter())

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=120)  # logs and pipes: wide enough for the matrix
    show(report, console)
    for path, text in ((arguments.json, report.to_json), (arguments.markdown, lambda: render(report))):
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text())
    return 0 if report.conformant else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "selfcheck":
        return _selfcheck(arguments)
    if arguments.command in ("export", "judge"):
        run = run_export if arguments.command == "export" else run_judge
        return run(arguments, parser)
    return _check(arguments, parser)


if __name__ == "__main__":
    sys.exit(main())
