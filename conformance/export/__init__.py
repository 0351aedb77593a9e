"""Conformance for implementations that Python cannot call: golden cases (``kqv export``) and a judge (``kqv judge``).

``kqv export DIR`` writes the cases ``kqv check`` would draw for a declaration as plain files (the
inputs, the options, the float64 expected output and the bound of each element, the examples of each
clause and the cases they call); an implementation in any language runs every case and writes its
outputs as ``.npy`` files; ``kqv judge DIR RESULTS`` then gives the report ``kqv check`` gives, clause by
clause. The format is on the docs page "Checking an implementation in another language", its schema
in ``manifest.schema.json``.
"""

from .draw import IN_MEMORY, ExportError, Summary, export

__all__ = ["IN_MEMORY", "ExportError", "Summary", "export"]
