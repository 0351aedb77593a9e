"""The manifest of an export (``manifest.json``): what it holds, and reading it back, checked against its schema.

Its JSON Schema is ``manifest.schema.json`` beside this module (package data) and on the docs page
"Checking an implementation in another language". :func:`read` gives the manifest of a folder or
raises :class:`ManifestError` naming the file and the field that is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..declaration import Declaration
from ..options import OPTIONS
from .arrays import plain
from .index import INDEX
from .schema import problem

MANIFEST = "manifest.json"
FORMAT, VERSION = "kqv-export", 1
SCHEMA = Path(__file__).with_name("manifest.schema.json")


class ManifestError(Exception):
    """A folder that holds no readable export (a usage error of ``kqv judge``); the message says what is wrong."""


def result_file(case_id: str, output: str) -> str:
    """The file of one output of a case in the results folder: ``<id>.npy``, ``<id>.lse.npy`` for the lse."""
    return f"{case_id}.npy" if output == "output" else f"{case_id}.{output}.npy"


def schema() -> dict[str, Any]:
    """The JSON Schema of the manifest."""
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def header(declaration: Declaration, profile: str, seed: int, versions: dict[str, str]) -> dict[str, Any]:
    """The fields of a manifest before its cases: format, kind, profile, seed, versions, declaration, index."""
    fields = {name: plain(getattr(declaration, name)) for name in OPTIONS}
    return {"format": FORMAT, "version": VERSION, "kind": declaration.kind, "profile": profile, "seed": seed,
            "versions": versions, "declaration": {"kind": declaration.kind, **fields},
            "index": INDEX if declaration.kind == "sdpa" else None}


def read(directory: Path) -> dict[str, Any]:
    """The manifest of the export in ``directory``; a :class:`ManifestError` naming what is wrong otherwise."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ManifestError(f"DIR: {directory} is not a directory (write one with kqv export)")
    if not path.is_file():
        raise ManifestError(f"DIR: {directory} holds no {MANIFEST} (write one with kqv export)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path}: not valid JSON ({error})") from None
    if isinstance(manifest, dict) and manifest.get("format") == FORMAT and manifest.get("version") != VERSION:
        raise ManifestError(f"{path}: format version {manifest.get('version')!r}, this kqv reads version {VERSION} "
                            f"(export again with this kqv)")
    found = problem(manifest, schema())
    if found:
        raise ManifestError(f"{path}: {found}")
    return manifest


def declaration_of(manifest: dict[str, Any]) -> Declaration:
    """The declaration the export was made for; a :class:`ManifestError` when this kqv cannot rebuild it."""
    fields = dict(manifest["declaration"])
    for name, value in fields.items():
        if isinstance(value, list):
            fields[name] = tuple(value)
    try:
        return Declaration(**fields)
    except (TypeError, ValueError, KeyError) as error:
        raise ManifestError(f"{MANIFEST}: declaration: {error}") from None
