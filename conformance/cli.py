"""The ``kqv`` command line.

``kqv selfcheck`` verifies the spec's derivations and the reference against its
oracle. Exit status: 0 when every check passes, 1 when one fails, 2 for usage
errors.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kqv", description="Specification, reference and conformance "
                                     "suite for transformer attention.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    selfcheck = commands.add_parser("selfcheck", help="check the spec's derivations and the reference "
                                    "against the mpmath oracle and torch")
    selfcheck.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    selfcheck.add_argument("--cases", type=_positive_int, default=50,
                           help="random cases per numerical check (default 50)")
    return parser


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
    return number


def _selfcheck(arguments: argparse.Namespace) -> int:
    from kqv.conformance.selfcheck import run

    results = run(seed=arguments.seed, cases=arguments.cases)
    width = max(len(result.clause) for result in results)
    for result in results:
        print(f"{result.status:<7} {result.clause:<{width}}  {result.message}")
    counts = {status: sum(r.status == status for r in results) for status in ("passed", "failed", "skipped")}
    print(f"selfcheck: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    return _selfcheck(arguments)


if __name__ == "__main__":
    sys.exit(main())
