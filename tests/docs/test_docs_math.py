"""The docs' math renderer (docs/_ext/kqv_mathml.py) converts every formula of the spec to MathML, and refuses a
formula it would only half convert, without building the site (tests/docs/test_docs_build.py checks the built pages)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kqv.spec import CLAUSES

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "_ext"))
try:
    from kqv_mathml import Unrendered, display_parts, mathml
finally:
    sys.path.pop(0)


def _formulas() -> list[tuple[str, str]]:
    formulas = []
    for clause_id, item in CLAUSES.items():
        formulas += [(clause_id, item.latex)] if item.latex else []
        steps = item.derivation.steps if item.derivation is not None else ()
        formulas += [(f"{clause_id} step {n}", step.latex) for n, step in enumerate(steps, 1)]
    return formulas


def test_every_formula_of_the_spec_converts_in_full() -> None:
    formulas = _formulas()
    assert len(formulas) > len(CLAUSES)
    for name, latex in formulas:
        for part in display_parts(latex):
            assert mathml(part, display=True).startswith('<math xmlns="http://www.w3.org/1998/Math/MathML" '
                                                         'display="block">'), name


def test_inline_math_is_an_inline_math_element() -> None:
    converted = mathml(r"\frac{q k^T}{\sqrt{E}}")
    assert 'display="inline"' in converted and "<mfrac>" in converted and "<msqrt>" in converted


@pytest.mark.parametrize("latex, left", [
    (r"\frobnicate{x} + 1", r"\frobnicate"),  # latex2mathml keeps an unknown command as <mi>\frobnicate</mi>
    (r"\begin{aligned} a &= b \\ c &= d \end{aligned}", "&"),  # ... and the & of an environment it lacks
])
def test_a_formula_left_half_converted_is_refused(latex: str, left: str) -> None:
    with pytest.raises(Unrendered, match="leaves") as raised:
        mathml(latex)
    assert left in str(raised.value)


def test_a_formula_that_does_not_parse_is_refused() -> None:
    with pytest.raises(Unrendered, match="cannot convert"):
        mathml(r"\frac{a}{")


def test_a_display_block_is_one_formula_per_paragraph_and_broken_lines_align() -> None:
    assert display_parts("a = b\n\n c = d \n") == ["a = b", "c = d"]
    assert display_parts(r"a &= b \\ c &= d") == [r"\begin{split}a &= b \\ c &= d\end{split}"]
    matrix = r"\left[\begin{matrix}1 \\ 2\end{matrix}\right]"
    assert display_parts(matrix) == [matrix]
