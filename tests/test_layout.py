"""The layout holds: imports flow one way (spec <- reference <- conformance) and no module imports
another that imports it back, directly or through others, imports inside functions included
(``TYPE_CHECKING`` blocks and a module's own parent packages aside)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"spec": "kqv.spec", "reference": "kqv.reference", "conformance": "kqv.conformance"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = PACKAGES[parts[0]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for folder in PACKAGES for path in (ROOT / folder).rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """The kqv modules ``name`` imports anywhere in its source, but in ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(node) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                   for node in ast.walk(block)}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module or ""
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name and not name.startswith(t + "."))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_graph_was_read() -> None:
    assert len(MODULES) > 60
    assert "kqv.conformance.kinds.sdpa.case" in GRAPH["kqv.conformance.kinds.sdpa.strategy"]
    assert "kqv.reference.stages" in GRAPH["kqv.reference.sdpa"]


def test_no_import_circles() -> None:
    try:
        tuple(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"an import circle: {' -> '.join(error.args[1])}")


@pytest.mark.parametrize(("importer", "forbidden"), [("kqv.spec", ("kqv.reference", "kqv.conformance")),
                                                     ("kqv.reference", ("kqv.conformance",))])
def test_imports_flow_one_way(importer: str, forbidden: tuple[str, ...]) -> None:
    for name, imported in GRAPH.items():
        if name == importer or name.startswith(importer + "."):
            bad = sorted(i for i in imported if i.startswith(forbidden))
            assert not bad, f"{name} imports {bad}"


def test_a_circle_would_be_found() -> None:
    # The check itself can fail: the circle the layout issue found (report -> markdown -> matrix -> report).
    graph = {"report": {"markdown"}, "markdown": {"matrix"}, "matrix": {"report"}}
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter(graph).static_order())


def test_every_package_is_installed() -> None:
    """A folder with an ``__init__.py`` that pyproject.toml does not list would be missing from a wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    folders = {_module_name(path) for folder in PACKAGES for path in (ROOT / folder).rglob("__init__.py")}
    assert folders - listed == set()
