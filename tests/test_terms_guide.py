"""The guide to adding a kind stays true: every code name it writes exists, and the docs list every kind.

Audit s21/k1 G1: the only guide, `specc/terms/__init__.py`'s docstring, sent a kind's author to a `_KIND_CLASSES`
list that did not exist.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

import specc.terms
from specc.terms import KINDS

ROOT = Path(__file__).parent.parent
GUIDE = ROOT / "docs" / "adding-a-kind.md"
# The modules whose names the guide writes without their module (`TermBase.build`, `FastPathRefused`).
NAMESPACES = ("specc.terms", "specc.terms.base", "specc.terms.limits", "specc.terms.smooth", "specc.terms.dose_roles",
              "specc.solve.first_order")
_DOTTED = re.compile(r"specc(?:\.\w+)+")
_PATH = re.compile(r"(?:specc|tests|docs|schemas)/[\w/.]+\.(?:py|md|json)(?:::\w+)?")


def _has(owner: object, name: str) -> bool:
    """Whether `owner` (a module or class) has `name`: an attribute, a dataclass field or a pydantic field."""
    fields = getattr(owner, "__dataclass_fields__", {}) if dataclasses.is_dataclass(owner) else {}
    return hasattr(owner, name) or name in fields or name in getattr(owner, "model_fields", {})


def _resolves(dotted: str) -> bool:
    """Whether `specc.a.b.C.d` names a module, or an attribute reached from the longest module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            owner: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not _has(owner, name):
                return False
            owner = getattr(owner, name, None)
        return True
    return False


def _namespace() -> dict[str, object]:
    names: dict[str, object] = {}
    for module in map(importlib.import_module, NAMESPACES):
        names.update({name: getattr(module, name) for name in dir(module) if not name.startswith("_")})
    return names


def _code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def _unknown(spans: list[str]) -> list[str]:
    """The code names in `spans` that name nothing: dotted `specc.` names, paths (with `::NAME`), `Class.attr` and
    capitalized names of `NAMESPACES`, `specc.terms`' own (`__all__`), and test functions. Field names and YAML
    (`hard: false`) are not code names."""
    namespace, tests = _namespace(), "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    unknown = []
    for span in spans:
        paths = _PATH.findall(span)
        for path in paths:
            file, _, name = path.partition("::")
            if not (ROOT / file).exists() or (name and not re.search(rf"^(def )?{name}\b", (ROOT / file).read_text(),
                                                                       re.MULTILINE)):
                unknown.append(path)
        unknown += [name for name in _DOTTED.findall(span) if not paths and not _resolves(name)]
        if paths or not re.fullmatch(r"[A-Za-z_]\w*(?:\.\w+)*", span) or span.startswith("specc."):
            continue
        head, *rest = span.split(".")
        if head in namespace:
            owner = namespace[head]
            for name in rest:
                if not _has(owner, name):
                    unknown.append(span)
                    break
                owner = getattr(owner, name, None)
        elif ((head[0].isupper() or head.startswith("_")) and not hasattr(specc.terms, head)) or (
                head.startswith("test_") and f"def {head}(" not in tests):
            unknown.append(span)
    return unknown


def test_every_code_name_of_the_guide_exists() -> None:
    assert _unknown(_code_spans(GUIDE.read_text(encoding="utf-8"))) == []


def test_the_registrys_own_pointer_names_what_exists() -> None:
    assert _unknown(_code_spans(specc.terms.__doc__ or "")) == []
    assert "docs/adding-a-kind.md" in (specc.terms.__doc__ or "")


@pytest.mark.parametrize("span", ["_KIND_CLASSES", "TermBase.smooth_forms", "specc.terms.worst_case.WORST_KINDS",
                                  "tests/test_terms_models.py::EXAMPLE", "NoSuchHook", "test_no_such_test"])
def test_a_name_that_does_not_exist_is_found(span: str) -> None:
    assert _unknown([span]) == [span]


def test_the_guide_names_every_hook_of_a_kind() -> None:
    """The methods a kind may override (`TermBase`'s own, not pydantic's) are each in the guide."""
    text = GUIDE.read_text(encoding="utf-8")
    hooks = [name for name, value in vars(specc.terms.TermBase).items()
             if not name.startswith("_") and (callable(value) or isinstance(value, (property, classmethod)))]
    assert hooks and [hook for hook in hooks if f"`TermBase.{hook}`" not in text and f"`{hook}`" not in text] == []


def test_the_protocol_language_lists_every_kind() -> None:
    text = (ROOT / "docs" / "protocol-language.md").read_text(encoding="utf-8")
    assert [kind for kind in KINDS if f"{{kind: {kind}," not in text] == []
