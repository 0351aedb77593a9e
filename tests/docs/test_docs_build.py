"""The documentation site builds warning-free (nitpicky, -W), renders every clause of kqv.spec with
its anchor, and the clause extension turns an unknown clause id into a build error."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kqv.spec import CLAUSES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXT = DOCS / "_ext"


def _sphinx(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
               "-d", str(out / ".doctrees"), str(source), str(out / "html")]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _output(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.extend(value for name, value in attrs if name == "id" and value)


def _ids(page: Path) -> list[str]:
    parser = _Ids()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.ids


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = _sphinx(DOCS, out)
    assert done.returncode == 0, _output(done)
    return out / "html"


def test_every_clause_has_exactly_one_anchor_on_the_site(site: Path) -> None:
    anchors: dict[str, list[str]] = {}
    for page in sorted(site.glob("*.html")):
        for element_id in _ids(page):
            if element_id.startswith("clause-"):
                anchors.setdefault(element_id.removeprefix("clause-"), []).append(page.name)
    missing = [clause_id for clause_id in CLAUSES if clause_id not in anchors]
    assert not missing, f"clauses without an anchor on the site: {missing}"
    twice = {clause_id: pages for clause_id, pages in anchors.items() if len(pages) > 1}
    assert not twice, f"clauses rendered more than once: {twice}"
    assert set(anchors) == set(CLAUSES)


def test_clause_role_links_to_the_anchor(site: Path) -> None:
    gradients = (site / "gradients.html").read_text(encoding="utf-8")
    assert 'href="masking.html#clause-mask.causal.independence"' in gradients


def test_figures_are_generated(site: Path) -> None:
    images = {image.name for image in (site / "_images").glob("*.png")}
    assert any(name.startswith("masking") for name in images), images
    assert any(name.startswith("positional") for name in images), images


def _tiny_project(root: Path, index: str) -> Path:
    source = root / "src"
    source.mkdir()
    (source / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(EXT)!r})\n"
        "project = 'tiny'\n"
        "extensions = ['myst_parser', 'sphinx.ext.mathjax', 'kqv_clauses']\n",
        encoding="utf-8",
    )
    (source / "index.md").write_text(index, encoding="utf-8")
    return source


def test_unknown_clause_id_fails_the_build(tmp_path: Path) -> None:
    source = _tiny_project(tmp_path, (
        "# Tiny\n\n"
        "```{clause} softmax.jacobain\n```\n\n"
        "See {clause}`mask.causal.top-lefty`.\n"
    ))
    done = _sphinx(source, tmp_path / "out")
    output = done.stdout + done.stderr
    assert done.returncode != 0, _output(done)
    assert "softmax.jacobain" in output and "did you mean 'softmax.jacobian'" in output, _output(done)
    assert "mask.causal.top-lefty" in output and "'mask.causal.top-left'" in output, _output(done)


def test_clause_rendered_twice_fails_the_build(tmp_path: Path) -> None:
    source = _tiny_project(tmp_path, (
        "# Tiny\n\n"
        "```{clause} mask.bool\n```\n\n"
        "```{clauses}\n:section: masking\n```\n"
    ))
    done = _sphinx(source, tmp_path / "out")
    assert done.returncode != 0, _output(done)
    assert "clause 'mask.bool' is rendered twice" in done.stdout + done.stderr, _output(done)


def test_attention_page_has_both_figures(site: Path) -> None:
    images = {image.name for image in (site / "_images").glob("attention-*.png")}
    assert {"attention-1.png", "attention-2.png"} <= images, images


def test_cli_page_is_generated_from_the_parser(site: Path) -> None:
    from kqv.conformance.cli import build_parser

    page = (site / "cli.html").read_text(encoding="utf-8")
    assert 'id="kqv-cli-selfcheck"' in page
    selfcheck = next(action for action in build_parser()._actions if action.dest == "command").choices["selfcheck"]
    for action in selfcheck._actions:
        for option in action.option_strings:
            assert option in page, option
    assert "cli.html" in (site / "index.html").read_text(encoding="utf-8")


def test_gradients_page_renders_the_gradient_section(site: Path) -> None:
    ids = set(_ids(site / "gradients.html"))
    for clause_id in ("gradient.value", "gradient.weights", "gradient.scores", "gradient.query", "gradient.key",
                      "gradient.masked-row", "softmax.jacobian"):
        assert f"clause-{clause_id}" in ids, clause_id


def test_report_links_point_at_anchors_of_the_built_site(site: Path) -> None:
    from kqv.conformance.links import base_url, clause_page, clause_url

    for clause_id in CLAUSES:
        page = clause_page(clause_id)
        assert f"clause-{clause_id}" in _ids(site / page), (clause_id, page)
        assert clause_url(clause_id) == f"{base_url()}{page}#clause-{clause_id}"


def test_the_docs_base_url_is_one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from kqv.conformance.links import clause_url

    monkeypatch.setenv("KQV_DOCS_URL", "file:///tmp/site")
    assert clause_url("mask.bool") == "file:///tmp/site/masking.html#clause-mask.bool"


def test_cli_page_documents_kqv_check(site: Path) -> None:
    from kqv.conformance.cli import build_parser

    page = (site / "cli.html").read_text(encoding="utf-8")
    assert 'id="kqv-cli-check"' in page
    check = next(action for action in build_parser()._actions if action.dest == "command").choices["check"]
    for action in check._actions:
        for option in action.option_strings:
            assert option in page, option


def test_conformance_page_tables_come_from_the_code(site: Path) -> None:
    from kqv.conformance.checks import checks_for
    from kqv.conformance.declaration import FIELDS

    page = (site / "conformance.html").read_text(encoding="utf-8")
    for kind in ("sdpa", "mha", "pe"):
        for check in checks_for(kind):
            assert f"clause-{check.clause}" in page, check.clause
    for name in FIELDS:
        assert f"<code class=\"docutils literal notranslate\"><span class=\"pre\">{name}</span></code>" in page, name


def test_error_model_and_masking_figures(site: Path) -> None:
    images = {image.name for image in (site / "_images").glob("*.png")}
    assert "error-model-1.png" in images
    assert {"masking-1.png", "padding_masks.png", "gradients.png"} <= images


RAW_LATEX = re.compile(r"\$|\\[A-Za-z]+|\\[()\[\]]")  # a dollar, a command, \( \) \[ \] as text
NOT_PROSE = {"math", "code", "pre", "script", "style", "svg"}


class _Math(HTMLParser):
    """Per clause anchor, its display formulas rendered as MathML; per page, text outside math and code that reads as
    raw LaTeX; the addresses of the scripts and stylesheets the page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: dict[str, int] = {}
        self.raw: list[str] = []
        self.loads: list[str] = []
        self._clause: str | None = None
        self._divs = 0  # the divs open inside the clause's container
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        element_id = attributes.get("id") or ""
        if tag == "div" and self._clause is None and element_id.startswith("clause-"):
            self._clause, self._divs = element_id.removeprefix("clause-"), 0
            self.blocks[self._clause] = 0
        if tag == "div" and self._clause is not None:
            self._divs += 1
        if tag == "math" and attributes.get("display") == "block" and self._clause is not None:
            self.blocks[self._clause] += 1
        if tag == "script" and attributes.get("src"):
            self.loads.append(attributes["src"] or "")
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.loads.append(attributes.get("href") or "")
        self._skip += tag in NOT_PROSE

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in NOT_PROSE
        if tag == "div" and self._clause is not None:
            self._divs -= 1
            if not self._divs:
                self._clause = None

    def handle_data(self, data: str) -> None:
        if not self._skip and RAW_LATEX.search(data):
            self.raw.append(data.strip())


def _math(page: Path) -> _Math:
    parser = _Math()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_every_formula_of_every_clause_renders_as_mathml(site: Path) -> None:
    blocks: dict[str, int] = {}
    for page in sorted(site.glob("*.html")):
        blocks.update(_math(page).blocks)
    for clause_id, item in CLAUSES.items():
        steps = len(item.derivation.steps) if item.derivation is not None else 0
        assert blocks.get(clause_id) == bool(item.latex) + steps, clause_id


def test_no_page_shows_raw_latex_or_loads_from_another_site(site: Path) -> None:
    # MathML built into the page (docs/_ext/kqv_mathml.py): no MathJax, no CDN, math readable offline.
    for page in sorted(site.glob("*.html")):
        parsed = _math(page)
        assert not parsed.raw, (page.name, parsed.raw)
        remote = [address for address in parsed.loads if "//" in address or "mathjax" in address.lower()]
        assert not remote, (page.name, remote)
    assert "<math" in (site / "error-model.html").read_text(encoding="utf-8")


def test_a_formula_that_does_not_convert_fails_the_build(tmp_path: Path) -> None:
    source = _tiny_project(tmp_path, "# Tiny\n\nA known formula $x^2$ and an unknown command $\\frobnicate{x}$.\n")
    conf = source / "conf.py"
    conf.write_text(conf.read_text(encoding="utf-8").replace("'sphinx.ext.mathjax'", "'kqv_mathml'")
                    + "myst_enable_extensions = ['dollarmath']\nhtml_math_renderer = 'mathml'\n", encoding="utf-8")
    done = _sphinx(source, tmp_path / "out")
    assert done.returncode != 0, _output(done)
    assert "formula not rendered as MathML" in done.stdout + done.stderr, _output(done)
    assert "\\frobnicate" in done.stdout + done.stderr, _output(done)


MATRIX = Path(__file__).resolve().parents[2] / "docs" / "conformance-matrix.json"


def test_other_languages_page_shows_the_kernel_and_the_schema(site: Path) -> None:
    page = (site / "other-languages.html").read_text(encoding="utf-8")
    assert "Checking an implementation in another language" in page
    assert "CAUSAL_REACH" in page  # docs/examples/c/attention.c, included whole
    assert "kqv export manifest" in page and "rows_without_keys" in page  # the schema, included whole
    assert "other-languages.html" in (site / "index.html").read_text(encoding="utf-8")


def test_conformance_matrix_covers_every_builtin_backend() -> None:
    # The page's report must be regenerated when a built-in backend is added (docs/conformance-matrix.md).
    from kqv.conformance.backends import BUILTINS

    report = json.loads(MATRIX.read_text(encoding="utf-8"))
    measured = {t["target"] for t in report["targets"]} | {u["target"] for u in report["unavailable"]}
    assert measured == set(BUILTINS)
    assert report["profile"] == "ci"


class _Tables(HTMLParser):
    """The tables of a page: each a list of rows, each row the text of its cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_conformance_matrix_cells_say_at_which_dtypes_a_status_was_met(site: Path) -> None:
    # A clause that passes at three dtypes and departs at float64 reads "pass; xfail f64", not "xfail".
    from kqv.conformance.report.cells import parts, text

    report = json.loads(MATRIX.read_text(encoding="utf-8"))
    parser = _Tables()
    parser.feed((site / "conformance-matrix.html").read_text(encoding="utf-8"))
    kinds = [kind for kind in ("sdpa", "mha", "pe") if any(t["kind"] == kind for t in report["targets"])]
    matrices = [table for table in parser.tables if table[0][:1] == ["clause"]]  # one per kind, in that order
    shown = {(kind, header[i], row[0]): cell for kind, (header, *rows) in zip(kinds, matrices)
             for row in rows for i, cell in enumerate(row) if i}
    expected = {(t["kind"], t["target"], c["clause"]): text(parts((d["dtype"], d["status"]) for d in c["dtypes"]))
                for t in report["targets"] for c in t["clauses"]}
    assert len(matrices) == len(kinds)
    assert {key: shown.get(key) for key in expected} == expected


def test_conformance_matrix_page_renders_the_report(site: Path) -> None:
    report = json.loads(MATRIX.read_text(encoding="utf-8"))
    page = (site / "conformance-matrix.html").read_text(encoding="utf-8")
    for target in report["targets"]:
        assert target["target"] in page
        for result in target["clauses"]:
            assert f"clause-{result['clause']}" in page
    for name, version in report["versions"].items():
        assert version in page, name
    assert "conventions" in page.lower()


class _Text(HTMLParser):
    """The text of a page in order, and where each h2 heading and the report picture start in it."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.headings: dict[str, int] = {}
        self.picture = -1
        self._heading: list[str] | None = None  # the text of the h2 being read
        self._start = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg" and ("class", "kqv-terminal") in attrs and self.picture < 0:
            self.picture = len(self.parts)
        if tag == "h2":
            self._heading, self._start = [], len(self.parts)

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._heading is not None:
            self.headings["".join(self._heading).strip().rstrip("¶").strip()] = self._start
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)
        self.parts.append(data)


def test_front_page_opens_with_the_quickstart_and_a_real_report(site: Path) -> None:
    page = _Text()
    page.feed((site / "index.html").read_text(encoding="utf-8"))
    text = "".join(page.parts)
    quickstart = text.index("kqv check my_attention.py:attention --kind sdpa")
    assert text.index("pip install -e .") < quickstart < text.index("kqv check docs/examples/tiled_attention.py")
    assert 0 <= page.picture < page.headings["What is checked"], page.headings
    picture = "".join(page.parts[page.picture:page.headings["What is checked"]]).replace("\xa0", " ")
    for seen in ("sdpa: clauses by backend", "FAIL", "FAILED docs/examples/tiled_attention.py:attention",
                 "attention.tile-boundaries", "counterexample (shrunk):", "S=65", "reproduce:", "--replay"):
        assert seen in picture, seen
    assert list(page.headings) == ["What is checked", "Why not allclose on a few random inputs",
                                   "The built-in backends", "Where to go next"]
    report = json.loads(MATRIX.read_text(encoding="utf-8"))
    backends = text[page.headings["The built-in backends"]:]
    for target in report["targets"]:
        assert target["target"] in backends
    for link in ("tutorial.html", "conformance.html", "contributing.html", "cli.html", "windows.html"):
        assert f'href="{link}' in (site / "index.html").read_text(encoding="utf-8"), link
    assert "Building this site" in (site / "contributing.html").read_text(encoding="utf-8")


def test_a_live_report_with_another_verdict_fails_the_build(tmp_path: Path) -> None:
    source = _tiny_project(tmp_path, (
        "# Tiny\n\n"
        "```{kqv-live-report} docs/examples/tiled_attention.py:attention\n"
        ":clauses: attention.tile-boundaries\n:expect: conformant\n```\n"
    ))
    conf = source / "conf.py"
    conf.write_text(conf.read_text(encoding="utf-8").replace("'kqv_clauses']", "'kqv_clauses', 'kqv_live_report']"),
                    encoding="utf-8")
    (tmp_path / "docs").symlink_to(DOCS)  # the target is named from the repository root: the project's parent
    done = _sphinx(source, tmp_path / "out")
    assert done.returncode != 0, _output(done)
    assert "was not-conformant, the page expects conformant" in done.stdout + done.stderr, _output(done)
