"""The known-deviations file of a CI run: ``kqv check TARGET --expected-failures FILE``.

A team keeps CI green while a tracked departure is open by listing it in a small TOML file, one
``[[departure]]`` table per known departure (the model is array-api-tests' xfails files)::

    [[departure]]
    clause = "attention.accuracy"           # a clause id (required)
    reason = "accumulates in float16 (#123)" # why, for the report (required)
    dtypes = ["float16", "bfloat16"]        # only at these dtypes (default: every dtype)
    target = "my_attention.py:attention"    # only this target: as given, or its name in the report (default: all)
    kind = "sdpa"                           # only this kind (default: all)
    strict = true                           # a pass fails the run (the default); false: reported as xpassed

The entries join the backend's own declared :class:`~kqv.conformance.declaration.ExpectedFailure`
entries after the run (:func:`apply`): a failure they cover becomes ``xfailed``, with the reason
and where the entry is. The file is strict, as pytest's ``xfail(strict=True)``: an entry that
passes fails the run (``failed``: "expected to fail ... but passed"), so the file cannot outlive
the departure it tracks; ``strict = false`` makes such a pass an ``xpassed`` instead. An entry that
nothing in the run matched (its clause skipped, not selected, or not a clause of the target's kind;
its target not checked) and an entry whose clause id kqv does not know are stale: each is reported
as a warning, and the run goes on. A file that cannot be read, is not TOML, or holds anything else
raises :class:`ExpectedFailuresError` naming the file, the entry (and its line) and what was expected.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .declaration import KINDS, ExpectedFailure
from .dtypes import check_dtype_name
from .report.data import Report
from .runner import link_foundations, summary

TABLE = "departure"
KEYS = ("clause", "reason", "dtypes", "target", "kind", "strict")
HEADER = re.compile(r"^\s*\[\[\s*departure\s*\]\]")


class ExpectedFailuresError(ValueError):
    """A file that cannot serve as a known-deviations file; the message names the file, the entry and what is
    expected."""


@dataclass(frozen=True)
class Entry:
    """One ``[[departure]]`` of a file: the departure, which targets and kinds it covers, and where it is written."""

    departure: ExpectedFailure
    where: str  # "ci/kqv-xfails.toml, departure 2 (line 7)"
    target: str | None = None
    kind: str | None = None
    strict: bool = True

    def covers(self, names: set[str], kind: str, clause: str, dtype: str | None) -> bool:
        """Whether it covers ``clause`` at ``dtype`` (None: a result of no dtype, which any entry of the clause
        covers) of the target called any of ``names``, of ``kind``."""
        return (self.target is None or self.target in names) and (self.kind is None or self.kind == kind) \
            and self.departure.clause == clause and (dtype is None or self.departure.applies(clause, dtype))

    def describe(self) -> str:
        dtypes = f" at {', '.join(self.departure.dtypes)}" if self.departure.dtypes else ""
        target = f" for {self.target}" if self.target else ""
        kind = f" ({self.kind})" if self.kind else ""
        return f"clause {self.departure.clause}{dtypes}{target}{kind}"


@dataclass
class ExpectedFailures:
    """The entries of a file, and the warnings its loading gave (unknown clause ids)."""

    entries: list[Entry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load(path: str | Path) -> ExpectedFailures:
    """The entries of the file at ``path``; an :class:`ExpectedFailuresError` for a file that is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ExpectedFailuresError(f"{path}: cannot be read ({getattr(error, 'strerror', None) or error})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ExpectedFailuresError(f"{path}: not valid TOML: {error}") from None
    others = sorted(set(data) - {TABLE})
    if others:
        raise ExpectedFailuresError(f"{path}: unknown key or table {', '.join(others)}; expected only [[{TABLE}]] "
                                    f"tables, each with {', '.join(KEYS)}")
    tables = data.get(TABLE, [])
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise ExpectedFailuresError(f"{path}: {TABLE} must be an array of tables, [[{TABLE}]], got {tables!r}")
    lines = [number for number, line in enumerate(text.splitlines(), 1) if HEADER.match(line)]
    known = ExpectedFailures()
    for index, table in enumerate(tables):
        line = f" (line {lines[index]})" if len(lines) == len(tables) else ""
        where = f"{path}, {TABLE} {index + 1}{line}"
        entry = _entry(table, where)
        if isinstance(entry, str):
            known.warnings.append(entry)
        else:
            known.entries.append(entry)
    return known


def _entry(table: dict[str, Any], where: str) -> Entry | str:
    """The entry of one table, or the warning of a stale one (an unknown clause id)."""
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ExpectedFailuresError(f"{where}: unknown key {', '.join(unknown)}; expected {', '.join(KEYS)}")
    for key in ("clause", "reason"):
        if key not in table:
            raise ExpectedFailuresError(f"{where}: the key {key} is missing; expected {key} = \"...\"")
    for key in ("clause", "reason", "target", "kind"):
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ExpectedFailuresError(f"{where}: {key} must be a non-empty string, got {table[key]!r}")
    if "strict" in table and not isinstance(table["strict"], bool):
        raise ExpectedFailuresError(f"{where}: strict must be true or false, got {table['strict']!r}")
    dtypes = table.get("dtypes", [])
    if not isinstance(dtypes, list):
        raise ExpectedFailuresError(f"{where}: dtypes must be a list of dtype names, such as [\"float16\"], got "
                                    f"{dtypes!r}")
    try:
        for name in dtypes:
            check_dtype_name(name, "dtypes")
    except ValueError as error:
        raise ExpectedFailuresError(f"{where}: {error}") from None
    if "kind" in table and table["kind"] not in KINDS:
        raise ExpectedFailuresError(f"{where}: kind: expected one of {', '.join(KINDS)}, got {table['kind']!r}")
    try:
        departure = ExpectedFailure(table["clause"], table["reason"], tuple(dtypes))
    except KeyError as error:
        return f"{where}: a stale entry, left out: {error.args[0]}"
    return Entry(departure, where, table.get("target"), table.get("kind"), table.get("strict", True))


def target_names(backend: Any) -> set[str]:
    """What an entry's ``target`` may call a backend: its name in the report, and the TARGET it was loaded from."""
    return {backend.name} | ({backend.recipe.target} if backend.recipe is not None else set())


def apply(report: Report, known: ExpectedFailures, names: list[set[str]] | None = None) -> Report:
    """``report`` with the file's entries joined to the declared ones: each result an entry covers and that ran
    becomes ``xfailed`` (it failed), ``failed`` (it passed and the entry is strict) or ``xpassed``; a result the
    backend's own declaration already made ``xfailed`` stays so. ``names`` are the names of each target (the report's
    name, and the TARGET it was given as), in the order of ``report.targets``. Stale entries become warnings."""
    used = [False] * len(known.entries)
    for position, target in enumerate(report.targets):
        aliases = (names[position] if names else set()) | {target.target}
        for result in target.clauses:
            changed = False
            for index, outcome in enumerate(result.dtypes):
                chosen = next((n for n, entry in enumerate(known.entries)
                               if entry.covers(aliases, target.kind, result.clause, outcome.dtype)), None)
                if chosen is None or outcome.status == "skipped":
                    continue
                used[chosen] = True
                entry = known.entries[chosen]
                if outcome.status != "xfailed":
                    result.dtypes[index] = _judged(outcome, entry)
                    changed = True
            if changed:
                result.message = summary(result)
        link_foundations(target.kind, target.clauses)
    report.warnings.extend(known.warnings)
    report.warnings.extend(f"{entry.where}: {entry.describe()}: nothing this run checked matched it (the clause was "
                           f"skipped or not run, or the target not checked): a stale entry, unless another run covers "
                           f"it" for entry, hit in zip(known.entries, used) if not hit)
    return report


def _judged(outcome: Any, entry: Entry) -> Any:
    """A result as the entry judges it: a failure expected, a pass not (strict) or tolerated."""
    reason = f"{entry.departure.reason} ({entry.where})"
    if outcome.status == "failed":
        return dataclasses.replace(outcome, status="xfailed", message=f"known departure: {reason}; {outcome.message}")
    if entry.strict:
        return dataclasses.replace(outcome, status="failed", message=f"expected to fail ({reason}) but passed: the "
                                   f"departure is gone; remove the entry, or set strict = false in it")
    return dataclasses.replace(outcome, status="xpassed", message=f"known departure: {reason}; it did not show in "
                               f"this run")
