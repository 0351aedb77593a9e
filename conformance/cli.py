"""The ``kqv`` command line.

``kqv check [TARGET ...]`` checks attention implementations clause by clause (no TARGET: every
built-in backend available here); ``kqv selfcheck`` verifies the spec's derivations and the
reference against its oracle. Exit status: 0 when everything conforms (or passes), 1 when a clause
fails, 2 for usage errors and targets that cannot be loaded.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .declaration import ACCUMULATIONS, CAUSAL_ALIGNMENTS, FIELDS, KINDS, MASKED_ROWS
from .profiles import PROFILES

# Declaration fields that are not command-line options (kind is --kind; the others are for Backend objects).
_NOT_OPTIONS = ("kind", "conventions", "expected_failures")
_CHOICES = {"masked_rows": MASKED_ROWS, "causal_alignment": CAUSAL_ALIGNMENTS, "accumulation": ACCUMULATIONS}


def _integer(minimum: int):
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {number}")
        return number
    return parse


def _list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


def _declaration_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("declaration", "what a TARGET given as a function supports and which "
                                      "conventions it follows (for a built-in or a Backend object, each option "
                                      "given replaces its declared value)")
    for name, item in FIELDS.items():
        if name in _NOT_OPTIONS:
            continue
        flag = "--" + name.replace("_", "-")
        text = item.metadata["help"]
        if item.type == "bool":
            if item.default:
                group.add_argument("--no-" + name.replace("_", "-"), dest=name, action="store_false", default=None,
                                   help=f"declare {name}=False (default True: {text})")
            else:
                group.add_argument(flag, dest=name, action="store_true", default=None,
                                   help=f"declare {name}=True (default False: {text})")
        elif name == "dtypes":
            group.add_argument(flag, dest=name, type=_list, default=None, metavar="D1,D2",
                               help=f"{text}, from float64, float32, float16, bfloat16 (default float64,float32)")
        elif name == "batch_dims":
            group.add_argument(flag, dest=name, type=_int_list, default=None, metavar="N1,N2", help=text)
        else:
            group.add_argument(flag, dest=name, choices=_CHOICES.get(name), default=None, help=text)


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
    check.add_argument("--kind", choices=KINDS, help="the contract: sdpa (default for functions), mha or pe; "
                       "for a built-in, only its backend of that kind")
    check.add_argument("--profile", choices=list(PROFILES), default="ci",
                       help="quick (seconds), ci (default, at most a minute per backend) or thorough (nightly)")
    check.add_argument("--seed", type=_integer(0), default=0, help="seed of the generated cases (default 0)")
    check.add_argument("--clause", action="append", dest="clauses", metavar="ID",
                       help="check only this clause id (repeatable)")
    check.add_argument("--replay", metavar="CASE_JSON", help="run the --clause check on this one case (the JSON "
                       "printed by a failure)")
    check.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE")
    check.add_argument("--markdown", metavar="FILE", help="write the report as Markdown to FILE")
    check.add_argument("--arrays", choices=("numpy", "torch"), default="numpy",
                       help="the array type a function TARGET takes and returns (default numpy)")
    _declaration_options(check)
    selfcheck = commands.add_parser("selfcheck", help="check the spec's derivations and the reference "
                                    "against the mpmath oracle and torch")
    selfcheck.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    selfcheck.add_argument("--cases", type=_integer(1), default=50,
                           help="random cases per numerical check (default 50)")
    return parser


def _overrides(arguments: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(arguments, name) for name in FIELDS
            if name not in _NOT_OPTIONS and getattr(arguments, name, None) is not None}


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

    from .loading import LoadError
    from .progress import reporter
    from .session import UsageError, plan
    from .terminal import show

    try:
        session = plan(arguments.targets, kind=arguments.kind, profile=arguments.profile, seed=arguments.seed,
                       clauses=arguments.clauses, overrides=_overrides(arguments), arrays=arguments.arrays,
                       replay=arguments.replay)
    except (UsageError, LoadError) as error:
        parser.exit(2, f"kqv check: error: {error}\n")
    report = session.run(reporter())

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=120)  # logs and pipes: wide enough for the matrix
    show(report, console)
    for path, text in ((arguments.json, report.to_json), (arguments.markdown, report.to_markdown)):
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text())
    return 0 if report.conformant else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "selfcheck":
        return _selfcheck(arguments)
    return _check(arguments, parser)


if __name__ == "__main__":
    sys.exit(main())
