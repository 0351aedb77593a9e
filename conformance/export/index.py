"""``cases.tsv``: the cases of an ``sdpa`` export, one call a line, for programs that would rather not parse JSON.

Tab-separated columns, after two comment lines that start with ``#`` (the second names the columns)::

    id  dtype  query  key  value  attn_mask  is_causal  scale  further

``query``, ``key``, ``value`` and ``attn_mask`` are ``.npy`` files relative to the export (``-``: no
mask); ``is_causal`` is 0 or 1; ``scale`` is the explicit scale, printed so that ``strtod`` reads it back
exactly (``-``: the default ``1/sqrt(E)``); ``further`` names the other keywords of the call, those of
the variants (``enable_gqa``, ``window``, ``return_lse``, ...: their values are in the manifest), or is
``-``. The output goes to ``<id>.npy`` in the results folder (and the lse of ``return_lse`` to
``<id>.lse.npy``), in the case's dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

INDEX = "cases.tsv"
COLUMNS = ("id", "dtype", "query", "key", "value", "attn_mask", "is_causal", "scale", "further")
BASIC = ("query", "key", "value", "attn_mask", "is_causal", "scale")


def line(case: dict[str, Any]) -> str:
    """The index line of one manifest case."""
    inputs, options = case["inputs"], case["options"]
    scale = options.get("scale")
    further = sorted(name for name in (*inputs, *options) if name not in BASIC)
    cells = [case["id"], case["dtype"], inputs["query"]["file"], inputs["key"]["file"], inputs["value"]["file"],
             inputs["attn_mask"]["file"] if "attn_mask" in inputs else "-", "1" if options.get("is_causal") else "0",
             "-" if scale is None else repr(float(scale)), ",".join(further) or "-"]
    return "\t".join(cells)


def write_index(directory: Path, manifest: dict[str, Any]) -> None:
    """Write ``cases.tsv`` for the cases of ``manifest`` (kind ``sdpa``)."""
    lines = [f"# kqv export, kind {manifest['kind']}, profile {manifest['profile']}, seed {manifest['seed']}: one "
             f"call a line (docs: Checking an implementation in another language)", "# " + "\t".join(COLUMNS)]
    lines += [line(case) for case in manifest["cases"]]
    (directory / INDEX).write_text("\n".join(lines) + "\n", encoding="utf-8")
