"""Data flows one way: no stage imports a later one (docs/architecture.md).

Every module of the package has a place (`_stage`): `specc.errors`, `specc.hashing`, `specc.terms`,
`specc.protocol.units` and `specc.protocol.isoeffect` (EQD2 / BED, which a `mean_dose` term computes) below every
stage, then the stages in `ORDER`, then the package itself (whose lazy exports reach `specc.check` and
`specc.pipeline`) and `python -m specc` on top. Runtime imports only (an `if TYPE_CHECKING:` import is a type, not a
dependency), lazy imports inside functions included, relative ones resolved, and `importlib.import_module` too: of a
literal name, of an f-string's leading package, or, where the name is computed (a lazy-export table), of every module
name the module writes as a string.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "specc"
ORDER = ("protocol", "case", "compile", "solve", "sequence", "evaluate", "report", "export", "approval", "planning",
         "delivery", "composite", "pipeline", "check", "cli")
BELOW = ("specc.errors", "specc.hashing", "specc.terms", "specc.protocol.units", "specc.protocol.isoeffect")
TOP = ("specc", "specc.__main__")
_MODULE_NAME = re.compile(r"specc(\.\w+)*")


def _stage(module: str) -> int | None:
    """The module's position (-1: below all, len(ORDER): on top); None for a name that is no module of the package."""
    if any(module == below or module.startswith(below + ".") for below in BELOW):
        return -1
    if module in TOP:
        return len(ORDER)
    parts = module.split(".")
    return ORDER.index(parts[1]) if parts[0] == "specc" and len(parts) > 1 and parts[1] in ORDER else None


@cache
def _modules() -> tuple[tuple[str, Path], ...]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(("specc", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        out.append((name, path))
    return tuple(out)


def _known() -> dict[str, Path]:
    return dict(_modules())


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@cache
def _eagerly_bound(package: str) -> frozenset[str]:
    """The names a package's `__init__` binds when imported (not those its `__getattr__` loads on first use)."""
    path = _known().get(package)
    if path is None or path.name != "__init__.py":
        return frozenset()
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return frozenset(names)


def _eager_imports(package: str) -> list[str]:
    """The modules a package's `__init__` imports at its top level: what importing a name it binds loads."""
    path = _known()[package]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = ast.Module(body=[node for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))],
                     type_ignores=[])
    return _runtime_imports(package, ast.unparse(top))


def _from_targets(base: str, names: list[str]) -> list[str]:
    """What `from base import names` loads: a submodule where a name is one, a package's eager imports where the
    name is one its `__init__` binds (`from specc import __version__` loads no stage), else the package itself (a lazy
    export, loaded on first use: `from specc import plan` is the pipeline's)."""
    known = _known()
    targets = []
    for name in names:
        if f"{base}.{name}" in known:
            targets.append(f"{base}.{name}")
        elif base in known and name in _eagerly_bound(base):
            targets.extend(_eager_imports(base))
        else:
            targets.append(base)
    return targets


def _runtime_imports(module: str, source: str) -> list[str]:
    """The package's modules `module` (whose `source` this is) imports at run time, by name."""
    is_package = _known().get(module, Path()).name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    found: list[str] = []
    computed = False

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if _is_type_checking(node.test):
                for statement in node.orelse:
                    self.visit(statement)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                if alias.name in _known() and _known()[alias.name].name == "__init__.py" and alias.asname is None:
                    # `import specc`, then `specc.__version__`: what its attributes load, as `from specc import`
                    used = sorted({use.attr for use in ast.walk(tree) if isinstance(use, ast.Attribute)
                                   and isinstance(use.value, ast.Name) and use.value.id == alias.name})
                    found.extend(_from_targets(alias.name, used) if used else [alias.name])
                else:
                    found.append(alias.name)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level == 0:
                base = node.module or ""
            else:  # relative: `from ..protocol import loader` in specc.terms.min_dose is specc.protocol.loader
                parts = package.split(".")
                kept = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*kept, *([node.module] if node.module else [])])
            if base == "specc" or base.startswith("specc."):
                found.extend(_from_targets(base, [alias.name for alias in node.names]))

        def visit_Call(self, node: ast.Call) -> None:
            nonlocal computed
            function = node.func
            called = function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)
            if called == "import_module" and node.args:
                name = node.args[0]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    found.append(name.value)
                elif isinstance(name, ast.JoinedStr) and name.values and isinstance(name.values[0], ast.Constant):
                    found.append(str(name.values[0].value).rstrip("."))  # f"specc.protocol.{name}": that package
                else:
                    computed = True
            self.generic_visit(node)

    Imports().visit(tree)
    if computed:  # a name from a table: every module name the module writes
        found.extend(node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                     and isinstance(node.value, str) and _MODULE_NAME.fullmatch(node.value))
    return [name for name in found if name == "specc" or name.startswith("specc.")]


def _violations(module: str, source: str) -> list[str]:
    mine = _stage(module)
    assert mine is not None, f"{module} has no place in the layers: add it to ORDER, BELOW or TOP"
    return [imported for imported in _runtime_imports(module, source)
            if (theirs := _stage(imported)) is None or theirs > mine]


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[name for name, _ in _modules()])
def test_no_stage_imports_a_later_one(module: str, path: Path) -> None:
    assert _violations(module, path.read_text(encoding="utf-8")) == []


def test_every_module_has_a_place() -> None:
    """A module outside every stage was never checked (specc.check and specc.composite were not, audit s21/k1 F3)."""
    assert [module for module, _ in _modules() if _stage(module) is None] == []


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


def test_the_check_places_check_and_composite_and_reads_relative_and_import_module_imports() -> None:
    """Audit s21/k1 F3: these imports, each a later stage's, passed unseen."""
    later = "from specc.check import check_dose\nfrom specc.composite import with_prior_dose\n"
    assert _violations("specc.compile.program", later) == ["specc.check", "specc.composite"]
    assert _violations("specc.composite", "from specc.pipeline import plan\n") == ["specc.pipeline"]
    assert _violations("specc.terms.min_dose", "from ..protocol import loader\n") == ["specc.protocol.loader"]
    assert _violations("specc.terms.min_dose", "from . import limits\nfrom .base import TermBase\n") == []
    assert _violations("specc.evaluate", "from .. import check\n") == ["specc.check"]
    lazy = "from importlib import import_module\ndef f(name):\n    return import_module(name)\nTABLE = {'a': 'specc.cli'}\n"
    assert _violations("specc.solve", lazy) == ["specc.cli"]
    assert _violations("specc.solve.run", "import importlib\nimportlib.import_module('specc.report')\n") == [
        "specc.report"]
    assert _violations("specc.case", "from importlib import import_module\nimport_module(f'specc.export.{x}')\n") == [
        "specc.export"]
    # the package on top: its version is a constant that loads nothing, a lazy export loads its stage
    assert _violations("specc.approval", "from specc import __version__\n") == []
    assert _violations("specc.evaluate.plan", "import specc\nVERSION = specc.__version__\n") == []
    assert _violations("specc.evaluate.plan", "import specc\nspecc.check_dose(None)\n") == ["specc"]
    assert _violations("specc.report.html", "from specc import plan\n") == ["specc"]
