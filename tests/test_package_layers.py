"""Data flows one way: no stage imports a later one (docs/architecture.md).

Runtime imports only (an `if TYPE_CHECKING:` import is a type, not a dependency), lazy
imports inside functions included. `specc.errors`, `specc.terms`, `specc.protocol.units` and
`specc.protocol.isoeffect` (EQD2 / BED, which a `mean_dose` term computes) sit below every stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "specc"
ORDER = ("protocol", "case", "compile", "solve", "sequence", "evaluate", "report", "export", "approval", "planning",
         "delivery", "pipeline", "cli")
BELOW = ("specc.errors", "specc.terms", "specc.protocol.units", "specc.protocol.isoeffect")


def _stage(module: str) -> int | None:
    """The stage's position (-1: below all); None for a module outside the stages (`specc` itself)."""
    if any(module == below or module.startswith(below + ".") for below in BELOW):
        return -1
    parts = module.split(".")
    return ORDER.index(parts[1]) if len(parts) > 1 and parts[1] in ORDER else None


def _runtime_imports(source: str) -> list[str]:
    found: list[str] = []

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = node.test
            if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            ):
                for statement in node.orelse:
                    self.visit(statement)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.extend(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module and node.level == 0:
                found.append(node.module)

    Imports().visit(ast.parse(source))
    return [name for name in found if name == "specc" or name.startswith("specc.")]


def _violations(module: str, source: str) -> list[str]:
    mine = _stage(module)
    if mine is None:
        return []
    later = []
    for imported in _runtime_imports(source):
        theirs = _stage(imported)
        if theirs is not None and theirs > mine:
            later.append(imported)
    return later


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(("specc", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        out.append((name, path))
    return out


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[name for name, _ in _modules()])
def test_no_stage_imports_a_later_one(module: str, path: Path) -> None:
    assert _violations(module, path.read_text(encoding="utf-8")) == []


def test_the_check_sees_a_later_import_but_not_a_type_only_one() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from specc.case import Case\n"
        "if TYPE_CHECKING:\n    from specc.report import write_report\n"
        "def later():\n    from specc.pipeline import plan\n"
    )
    assert _violations("specc.compile.program", source) == ["specc.pipeline"]
    assert _violations("specc.terms.min_dose", "import specc.protocol.units\n") == []
    assert _violations("specc.terms.min_dose", "from specc.protocol.goals import Goal\n") == ["specc.protocol.goals"]
