"""The one option schema of ``kqv check``, the pytest plugin and :func:`kqv.conformance.check`.

Every field of :class:`~kqv.conformance.declaration.Declaration` a user may set (all but ``kind``,
``conventions`` and ``expected_failures``, which a :class:`~kqv.conformance.backend.Backend` object
carries) is one :class:`Option`, made from the field itself: its flag (``masked_rows`` is
``--masked-rows``), its help, its
choices, how its text is read (``--masked-rows nan``, ``--kqv-declare masked_rows=nan``; a bool is
``--gqa`` or ``--no-gqa``) and how
its value is written back into a command that reproduces a run. The run options (kind, profile,
seed, array type) are ``RUN_OPTIONS``. Overriding a backend's declaration makes a new
:class:`~kqv.conformance.backend.Backend` (:func:`with_overrides`); the user's stays as it was.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from .declaration import ACCUMULATIONS, CAUSAL_ALIGNMENTS, FIELDS, KINDS, MASKED_ROWS
from .dtypes import DTYPES
from .profiles import PROFILES

NOT_OPTIONS = ("kind", "conventions", "expected_failures")  # set on a Backend object, or by --kind
CHOICES = {"masked_rows": MASKED_ROWS, "causal_alignment": CAUSAL_ALIGNMENTS, "accumulation": ACCUMULATIONS}
ARRAYS = ("numpy", "torch")
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
DEFAULT_TIMEOUT = 60.0  # seconds per call of the backend: far above any call kqv makes, short of "for ever"


class OptionError(ValueError):
    """A value an option cannot take; the message names the option and what it expects."""


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _integers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _names(text))
    except ValueError:
        raise OptionError(f"expected integers separated by commas, got {text!r}") from None


@dataclass(frozen=True)
class Option:
    """One declaration field as an option: ``parse`` reads its text, ``words`` writes its value back."""

    name: str
    kind: str  # "bool", "choice", "count" (an integer >= 0), "names" or "integers" (both comma-separated)
    help: str
    default: Any
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        """The value of ``text`` (``true``/``false`` for a bool); an :class:`OptionError` naming what is expected."""
        if self.kind == "bool":
            if text.lower() not in TRUE + FALSE:
                raise OptionError(f"{self.name}: expected true or false, got {text!r}")
            return text.lower() in TRUE
        if self.kind == "names":
            return _names(text)
        if self.kind == "integers":
            try:
                return _integers(text)
            except OptionError as error:
                raise OptionError(f"{self.name}: {error}") from None
        if self.kind == "count":
            if not text.strip().isdigit():
                raise OptionError(f"{self.name}: expected an integer >= 0, got {text!r}")
            return int(text)
        if self.choices is not None and text not in self.choices:
            raise OptionError(f"{self.name}: expected one of {', '.join(self.choices)}, got {text!r}")
        return text

    def words(self, value: Any) -> list[str]:
        """The command-line words that set ``value``."""
        if self.kind == "bool":
            return [self.flag if value else "--no-" + self.name.replace("_", "-")]
        return [self.flag, ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)]

    def add_to(self, group: Any) -> None:
        """Add the option to an argparse parser or group, defaulting to None (not given)."""
        if self.name == "backward":
            _add_backward(group, self)
            return
        if self.kind == "bool":
            group.add_argument(self.flag, dest=self.name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"declare {self.name}=True or False (default {self.default}: {self.help})")
            return
        metavar = {"names": "D1,D2", "integers": "N1,N2", "count": "N"}.get(self.kind)
        help_text = self.help
        if self.name == "dtypes":
            help_text = f"{self.help}, from {', '.join(DTYPES)} (default {','.join(self.default)})"
        group.add_argument(self.flag, dest=self.name, type=_argparse_type(self), choices=self.choices, default=None,
                           metavar=metavar, help=help_text)


def _add_backward(group: Any, option: Option) -> None:
    """``--backward [MODULE:FUNCTION]`` and ``--no-backward``: declare the backward pass, and name the backward callable
    of a function TARGET whose arrays kqv cannot differentiate itself (the value is that target, a str)."""
    group.add_argument(option.flag, dest=option.name, nargs="?", const=True, default=None, metavar="MODULE:FUNCTION",
                       help=f"declare backward=True (default {option.default}: {option.help}); with MODULE:FUNCTION "
                            "(or path/to/file.py:function), the backward callable of a function TARGET: "
                            "backward(query, key, value, grad_output, **the call's options) -> (dQ, dK, dV). Give it "
                            "after the TARGETs: kqv check TARGET --backward MODULE:FUNCTION")
    group.add_argument("--no-" + option.name.replace("_", "-"), dest=option.name, action="store_const", const=False,
                       help="declare backward=False")


def backward_target(overrides: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``(overrides, target)``: a ``--backward MODULE:FUNCTION`` given on the command line as ``backward=True`` and the
    target of the backward callable (None when ``--backward`` came without one)."""
    value = overrides.get("backward")
    if not isinstance(value, str):
        return overrides, None
    return {**overrides, "backward": True}, value


def _argparse_type(option: Option) -> Callable[[str], Any] | None:
    if option.kind not in ("names", "integers", "count"):
        return None

    def parse(text: str) -> Any:
        try:
            return option.parse(text)
        except OptionError as error:
            raise argparse.ArgumentTypeError(str(error).split(": ", 1)[-1]) from None
    return parse


def _option(name: str, item: dataclasses.Field) -> Option:
    default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
    if item.type == "bool":
        kind = "bool"
    elif name == "batch_dims":
        kind = "integers"
    elif name == "dtypes":
        kind = "names"
    elif item.type == "int":
        kind = "count"
    else:
        kind = "choice"
    return Option(name, kind, item.metadata["help"], default, CHOICES.get(name))


OPTIONS: dict[str, Option] = {name: _option(name, item) for name, item in FIELDS.items() if name not in NOT_OPTIONS}


def add_declaration_options(parser: Any,
                            description: str = "what a TARGET given as a function supports and which conventions it "
                                               "follows (for a built-in or a Backend object, each option given "
                                               "replaces its declared value)", leave_out: tuple[str, ...] = ()) -> None:
    """The declaration fields as options of a command (``kqv check``, ``kqv export``), in a group of their own;
    ``leave_out`` names the fields the command has no use for."""
    group = parser.add_argument_group("declaration", description)
    for name, option in OPTIONS.items():
        if name not in leave_out:
            option.add_to(group)


def integer(minimum: int) -> Callable[[str], int]:
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


def seconds(text: str) -> float:
    """An argparse type: a number of seconds >= 0."""
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return number


@dataclass(frozen=True)
class RunOption:
    """An option of the run itself: the same name, choices and help on the command line and in pytest."""

    name: str
    help: str
    default: Any = None
    choices: tuple[str, ...] | None = None
    type: Callable[[str], Any] | None = None
    flag: bool = False  # ``--name`` and ``--no-name``
    metavar: str | None = None

    def add_to(self, group: Any, prefix: str = "--") -> None:
        """Add it to argparse (``group.add_argument``) or pytest (``group.addoption``) as ``prefix + name``."""
        add = getattr(group, "addoption", None) or group.add_argument
        dest = ("kqv_" if prefix == "--kqv-" else "") + self.name.replace("-", "_")
        if self.flag:
            add(prefix + self.name, dest=dest, action=argparse.BooleanOptionalAction, default=self.default,
                help=self.help)
            return
        keywords: dict[str, Any] = {"default": self.default, "help": self.help}
        if self.choices is not None:
            keywords["choices"] = list(self.choices)
        if self.type is not None:
            keywords["type"] = self.type
        if self.metavar is not None:
            keywords["metavar"] = self.metavar
        add(prefix + self.name, dest=dest, **keywords)


RUN_OPTIONS: dict[str, RunOption] = {
    "kind": RunOption("kind", "the contract: sdpa (default for functions), mha or pe; for a built-in, only its backend "
                      "of that kind", None, KINDS),
    "profile": RunOption("profile", "quick (seconds), ci (default, about a minute to a few per backend) or "
                         "thorough (nightly)", "ci", tuple(PROFILES)),
    "seed": RunOption("seed", "seed of the generated cases (default 0)", 0, None, integer(0)),
    "arrays": RunOption("arrays", "the array type a function target takes and returns (default numpy)", "numpy", ARRAYS),
    "jobs": RunOption("jobs", "processes checking clauses at once (default: the cores available; the same "
                      "verdicts as --jobs 1)", None, None, integer(1)),
    "isolation": RunOption("isolation", "run each backend in a worker process, so that a crash or a hang fails the "
                           "case that caused it and the run goes on (default on POSIX systems; --no-isolation calls "
                           "it in this process, for pdb)", None, flag=True),
    "expected-failures": RunOption("expected-failures", "a known-deviations file (TOML, one [[departure]] table per "
                                   "known departure: clause, reason, dtypes, target, kind, strict): the failures it "
                                   "lists are expected; a pass of a listed one fails the run unless strict = false; "
                                   "an entry nothing in the run matched is reported as stale", metavar="FILE"),
    "timeout": RunOption("timeout", "seconds one call of the backend may take before it fails its case "
                         f"(default {DEFAULT_TIMEOUT:g}; 0: no limit; with isolation only)", DEFAULT_TIMEOUT, None, seconds),
}


def from_namespace(arguments: argparse.Namespace) -> dict[str, Any]:
    """The declaration fields given on the command line (None: not given)."""
    return {name: getattr(arguments, name) for name in OPTIONS if getattr(arguments, name, None) is not None}


def from_assignments(items: list[str]) -> dict[str, Any]:
    """``["masked_rows=nan", "float_mask=false"]`` as declaration fields; an :class:`OptionError` naming the problem."""
    overrides = {}
    for item in items:
        name, equals, text = item.partition("=")
        name = name.strip()
        if not equals:
            raise OptionError(f"expected NAME=VALUE, got {item!r}")
        if name not in OPTIONS:
            raise OptionError(f"unknown field {name!r}; known: {', '.join(OPTIONS)}")
        overrides[name] = OPTIONS[name].parse(text.strip())
    return overrides


def command_words(overrides: dict[str, Any]) -> list[str]:
    """The command-line words that set ``overrides`` (for the command that reproduces a run)."""
    return [word for name, value in overrides.items() for word in OPTIONS[name].words(value)]


def with_overrides(backend: Any, overrides: dict[str, Any]) -> Any:
    """A new Backend whose declaration has ``overrides``; ``backend`` itself is left as it was.

    Unknown fields raise a TypeError listing the known ones, bad values a ValueError naming the field.
    ``backward`` applies to sdpa and mha backends only (the gradients of pe are not checked): ``kqv check numpy
    --no-backward`` leaves it out for numpy's sdpa and mha backends and leaves its pe backend as it is.
    """
    if backend.kind not in ("sdpa", "mha"):
        overrides = {name: value for name, value in overrides.items() if name != "backward"}
    if not overrides:
        return backend
    recipe = backend.recipe and backend.recipe._replace(overrides={**backend.recipe.overrides, **overrides})
    return dataclasses.replace(backend, declaration=backend.declaration.replace(**overrides), recipe=recipe)
