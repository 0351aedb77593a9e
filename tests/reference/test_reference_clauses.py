"""The reference cites every clause it implements, by its exact id."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kqv.reference

IMPLEMENTED = {
    "projection.query", "projection.key", "projection.value", "scores.dot-product", "scores.scale.default",
    "scores.scale.explicit", "mask.bool", "mask.additive", "mask.causal.top-left", "mask.causal.bottom-right",
    "mask.fully-masked-row", "mask.zero-weight", "softmax.definition", "softmax.stable", "softmax.rows-sum-to-one",
    "output.weighted-sum", "attention.sdpa", "attention.shape", "attention.dtype", "mha.split", "mha.head",
    "mha.concat", "mha.output-projection", "pe.sinusoid", "pe.odd-d-model", "gqa.head-mapping", "gqa.repeat-interleave",
    "gradient.value", "gradient.weights", "gradient.scores", "gradient.query", "gradient.key", "gradient.masked-row",
}
SECTIONS = ("projection", "scores", "mask", "softmax", "output", "attention", "gqa", "mha", "pe", "gradient")


def _cited() -> set[str]:
    source = "\n".join(path.read_text() for path in Path(kqv.reference.__file__).parent.glob("*.py"))
    ids = set(re.findall(r"``([a-z]+(?:\.[a-z0-9-]+)+)``", source))
    ids |= set(re.findall(r"clauses? ([a-z]+(?:\.[a-z0-9-]+)+)", source))
    return {i for i in ids if i.split(".")[0] in SECTIONS}


def test_every_implemented_clause_is_cited() -> None:
    assert IMPLEMENTED <= _cited(), sorted(IMPLEMENTED - _cited())


def test_cited_ids_exist_in_the_spec() -> None:
    try:
        from kqv.spec import CLAUSES
    except ImportError:
        pytest.skip("kqv.spec.CLAUSES is not available")
    assert _cited() <= set(CLAUSES), sorted(_cited() - set(CLAUSES))
