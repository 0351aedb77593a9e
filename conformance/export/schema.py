"""A small JSON Schema validator: the part of the standard (draft 2020-12) that ``manifest.schema.json`` uses.

Keywords: ``type`` (one name or a list), ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties`` (a schema or false), ``items``, ``minItems``, ``minimum``, ``pattern`` and
``$ref`` to ``#/$defs/<name>``; the others (``title``, ``description``, ``$schema``, ``$id``) only
document. kqv needs no jsonschema package for it; any validator of the standard accepts the same
manifests.
"""

from __future__ import annotations

import re
from typing import Any

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[name])


def problem(instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, where: str = "") -> str | None:
    """The first place where ``instance`` breaks ``schema``, as ``"cases[3].dtype: expected one of ..."``, or None."""
    root = root or schema
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
    here = where or "the manifest"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is(instance, name) for name in names):
            return f"{here}: expected {' or '.join(names)}, got {instance!r:.60}"
    if "enum" in schema and instance not in schema["enum"]:
        return f"{here}: expected one of {', '.join(map(str, schema['enum']))}, got {instance!r:.60}"
    if "const" in schema and instance != schema["const"]:
        return f"{here}: expected {schema['const']!r}, got {instance!r:.60}"
    if "minimum" in schema and _is(instance, "number") and instance < schema["minimum"]:
        return f"{here}: expected a number >= {schema['minimum']}, got {instance!r}"
    if "pattern" in schema and isinstance(instance, str) and not re.search(schema["pattern"], instance):
        return f"{here}: expected a string matching {schema['pattern']}, got {instance!r:.60}"
    if isinstance(instance, dict):
        return _object_problem(instance, schema, root, where)
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            return f"{here}: expected at least {schema['minItems']} item(s), got {len(instance)}"
        if "items" in schema:
            for n, item in enumerate(instance):
                found = problem(item, schema["items"], root, f"{where}[{n}]")
                if found:
                    return found
    return None


def _object_problem(instance: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    prefix = f"{where}." if where else ""
    for name in schema.get("required", ()):
        if name not in instance:
            return f"{where or 'the manifest'}: missing the field {name!r}"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, value in instance.items():
        if name in properties:
            found = problem(value, properties[name], root, prefix + name)
        elif extra is False:
            found = f"{prefix + name}: not a field of the format"
        elif isinstance(extra, dict):
            found = problem(value, extra, root, prefix + name)
        else:
            found = None
        if found:
            return found
    return None
