"""The clause registry: ids, statements, LaTeX, sections and the lookup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sympy

import kqv.spec as spec
from kqv.spec import CLAUSES, SECTIONS, Clause, clause

VARIANT_IDS = [  # the clauses of the sdpa variants and the KV cache, each with a checked derivation
    "window.index-rule",
    "window.causal",
    "window.no-window",
    "window.outside-keys",
    "softcap.formula",
    "softcap.bounded",
    "softcap.small-scores",
    "softcap.order",
    "alibi.formula",
    "alibi.slopes",
    "alibi.float-mask",
    "alibi.per-row-form",
    "alibi.head-order",
    "lengths.index-rule",
    "lengths.offset",
    "lengths.full",
    "lengths.padding",
    "lengths.empty-row",
    "cache.decode",
    "sinks.formula",
    "sinks.mass",
    "sinks.empty-row",
    "sinks.limit",
    "sinks.head-order",
    "lse.definition",
    "lse.weights",
    "lse.empty-row",
    "lse.combine",
]

REQUIRED_IDS = [
    "projection.query",
    "projection.key",
    "projection.value",
    "scores.dot-product",
    "scores.scale.default",
    "scores.scale.explicit",
    "scores.scale.variance",
    "mask.bool",
    "mask.additive",
    "gqa.head-mapping",
    "gqa.multi-query",
    "gqa.repeat-interleave",
    "gqa.group-structure",
    *VARIANT_IDS,
    "mask.causal.top-left",
    "mask.causal.bottom-right",
    "mask.fully-masked-row",
    "mask.zero-weight",
    "mask.causal.independence",
    "softmax.definition",
    "softmax.rows-sum-to-one",
    "softmax.shift-invariance",
    "softmax.stable",
    "softmax.jacobian",
    "output.weighted-sum",
    "output.convex-hull",
    "output.linear-in-value",
    "attention.sdpa",
    "attention.shape",
    "attention.dtype",
    "attention.permutation.queries",
    "attention.permutation.keys",
    "attention.batch-independence",
    "attention.accuracy",
    "attention.finite",
    "impl.determinism",
    "impl.inputs-unmodified",
    "impl.strided-inputs",
    "mha.split",
    "mha.head",
    "mha.concat",
    "mha.output-projection",
    "mha.concat-block-sum",
    "mha.single-head",
    "mha.cross-attention",
    "pe.sinusoid",
    "pe.odd-d-model",
    "pe.bounded",
    "pe.wavelengths",
    "pe.rotation",
    "gradient.value",
    "gradient.weights",
    "gradient.scores",
    "gradient.query",
    "gradient.key",
    "gradient.masked-row",
]

REQUIRED_DERIVATIONS = [
    *VARIANT_IDS,
    "scores.scale.variance",
    "mask.causal.independence",
    "softmax.rows-sum-to-one",
    "softmax.shift-invariance",
    "softmax.jacobian",
    "output.convex-hull",
    "output.linear-in-value",
    "attention.permutation.queries",
    "attention.permutation.keys",
    "mha.concat-block-sum",
    "pe.bounded",
    "pe.wavelengths",
    "pe.rotation",
    "gradient.value",
    "gradient.weights",
    "gradient.scores",
    "gradient.query",
    "gradient.key",
    "gradient.masked-row",
]

ID_PATTERN = re.compile(r"^[a-z]+(\.[a-z0-9-]+)+$")
ALL = list(CLAUSES.values())


def test_public_names() -> None:
    for name in ("Clause", "Derivation", "Step", "DerivationError", "CLAUSES", "SECTIONS", "clause"):
        assert hasattr(spec, name), name


def test_every_required_id_is_present() -> None:
    missing = [identifier for identifier in REQUIRED_IDS if identifier not in CLAUSES]
    assert not missing, missing


@pytest.mark.parametrize("identifier", REQUIRED_DERIVATIONS)
def test_required_derivations_are_present(identifier: str) -> None:
    assert CLAUSES[identifier].derivation is not None
    assert CLAUSES[identifier].derivation.steps


@pytest.mark.parametrize("item", ALL, ids=[item.id for item in ALL])
def test_clause_fields(item: Clause) -> None:
    assert isinstance(item, Clause)
    assert item.id and item.title and item.statement and item.section
    assert ID_PATTERN.match(item.id), item.id
    assert "\n" not in item.statement and "\n" not in item.title
    assert item.statement == item.statement.strip()
    assert CLAUSES[item.id] is item


@pytest.mark.parametrize("item", [item for item in ALL if item.expr is not None],
                         ids=[item.id for item in ALL if item.expr is not None])
def test_latex_is_rendered_by_sympy(item: Clause) -> None:
    assert isinstance(item.expr, sympy.Basic)
    assert item.expr not in (sympy.true, sympy.false), "the formula evaluated away"
    assert item.latex
    assert item.latex == sympy.latex(item.expr)


def test_clauses_without_formula_have_empty_latex() -> None:
    for item in ALL:
        if item.expr is None:
            assert item.latex == ""


def test_ids_are_unique_and_follow_the_pattern() -> None:
    identifiers = [item.id for item in ALL]
    assert len(identifiers) == len(set(identifiers))
    assert all(ID_PATTERN.match(identifier) for identifier in identifiers)


def test_sections_are_ordered_and_clauses_read_section_by_section() -> None:
    keys = [key for key, _ in SECTIONS]
    assert keys == ["projections", "scores", "masking", "softmax", "output", "attention", "heads", "windows",
                    "softcap", "alibi", "lengths", "sinks", "lse", "multihead", "positional", "gradients",
                    "gradient-properties"]
    assert all(title for _, title in SECTIONS)
    order = [keys.index(item.section) for item in ALL]
    assert order == sorted(order), "CLAUSES is not in reading order"
    assert set(order) == set(range(len(keys))), "a section has no clause"


def test_required_ids_sit_in_their_sections() -> None:
    prefix_to_section = {
        "projection": "projections", "scores": "scores", "mask": "masking", "softmax": "softmax",
        "output": "output", "attention": "attention", "impl": "attention", "gqa": "heads", "window": "windows",
        "softcap": "softcap", "alibi": "alibi", "lengths": "lengths", "cache": "lengths", "sinks": "sinks", "lse": "lse",
        "mha": "multihead",
        "pe": "positional", "gradient": "gradients",
    }
    for identifier in REQUIRED_IDS:
        assert CLAUSES[identifier].section == prefix_to_section[identifier.split(".")[0]], identifier


def test_every_clause_names_the_docs_page_that_renders_it() -> None:
    # The reports link to <page>.html#clause-<id>; the docs build refuses a clause rendered elsewhere.
    pages = {path.stem for path in (Path(spec.__file__).resolve().parents[1] / "docs").glob("*.md")}
    for item in ALL:
        assert item.page in pages, (item.id, item.page)
    assert CLAUSES["softmax.jacobian"].page == "gradients" and CLAUSES["attention.accuracy"].page == "error-model"


def test_lookup_returns_the_clause() -> None:
    assert clause("softmax.rows-sum-to-one") is CLAUSES["softmax.rows-sum-to-one"]


def test_lookup_of_a_typo_names_it_and_suggests_the_close_id() -> None:
    with pytest.raises(KeyError) as raised:
        clause("softmax.rows-sum-to-on")
    message = str(raised.value)
    assert "softmax.rows-sum-to-on" in message
    assert "softmax.rows-sum-to-one" in message


def test_lookup_of_something_unrelated_raises_without_suggestion() -> None:
    with pytest.raises(KeyError, match="unknown clause id 'zzz'"):
        clause("zzz")


def test_spec_imports_only_sympy_and_the_standard_library() -> None:
    import sys
    from pathlib import Path

    allowed = {"sympy", "__future__", "dataclasses", "typing", "difflib"}
    for path in Path(spec.__file__).parent.glob("*.py"):
        for line in path.read_text().splitlines():
            match = re.match(r"^(?:from|import)\s+([A-Za-z_][\w]*)", line)
            if match and not line.startswith("from ."):
                assert match.group(1) in allowed or match.group(1) in sys.stdlib_module_names, (path.name, line)
