"""Safe YAML reading that remembers where every value was written.

PyYAML's safe composer gives nodes with marks (line, column); we check the nodes ourselves
(duplicate keys, which PyYAML silently drops, non-text keys, unsupported tags, recursive
aliases) and then turn them into plain Python data plus a table from each value's path to
its position. Templates are merged on nodes (see `templates`), so every value keeps the file
it came from.
"""

from __future__ import annotations

import re
import unicodedata

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from specc.protocol.diagnostics import Diagnostic, format_loc

Path = tuple[str | int, ...]

# Expanding aliases can blow a small file up exponentially ("billion laughs"); no protocol
# comes near this many values.
MAX_VALUES = 100_000
# Protocols are a few levels deep; a limit keeps recursion well inside Python's stack.
MAX_DEPTH = 64

_STANDARD_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")
}

# An unquoted yes, no, on or off is a boolean to YAML 1.1 (PyYAML) and text to YAML 1.2 (the yaml-language-server
# the schema header names): the two would read one file differently, so only true and false are taken.
_BOOL = "tag:yaml.org,2002:bool"
_STR = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Position:
    """1-based line and column of a value in a file."""

    file: str
    line: int
    column: int


def position_of(mark: yaml.Mark) -> Position:
    return Position(mark.name, mark.line + 1, mark.column + 1)


@dataclass
class YamlDocument:
    """Plain data from a YAML file, with the position of each value and of each mapping key."""

    data: Any
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)


def compose(text: str, filename: str) -> tuple[Node | None, list[Diagnostic]]:
    """Parse `text` into a checked node tree; syntax and key problems come back as diagnostics.

    The text is read in Unicode's composed form (NFC): "Rückenmark" typed on one system and stored decomposed
    by another is one name, in structure keys, aliases and goals alike (the case side compares in NFC too)."""
    text = unicodedata.normalize("NFC", text)
    try:
        loader = yaml.SafeLoader(text)  # the reader rejects control characters here already
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        message = f"invalid YAML: character #x{error.character:04x} is not allowed"
        return None, [Diagnostic(filename, line, column, "", message)]
    loader.name = filename  # marks carry this name, so merged trees remember each value's file
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "cannot be read"
        if error.context and error.context_mark and error.problem:
            problem += f" ({error.context} started at line {error.context_mark.line + 1})"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        if re.match(r"expected <block end>, but found '<block (mapping|sequence) start>'", error.problem or ""):
            # the parser's words for a key or list item indented deeper than its siblings
            problem = (
                "this line is indented differently from the lines before it (the keys of one mapping, and the "
                f"items of one list, start in the same column); the YAML parser says: {problem}"
            )
        return None, [Diagnostic(filename, line, column, "", f"invalid YAML: {problem}{_advice(problem)}")]
    except yaml.YAMLError as error:  # reader errors (control characters further on) carry no mark
        return None, [Diagnostic(filename, None, None, "", f"invalid YAML: {error}")]
    except RecursionError:
        return None, [Diagnostic(filename, None, None, "", "invalid YAML: nested too deeply")]
    finally:
        loader.dispose()
    if node is None:
        return None, [Diagnostic(filename, 1, 1, "", "the file holds no YAML document")]
    diagnostics: list[Diagnostic] = []
    fatal = [False]
    _check(node, (), set(), diagnostics, [0], fatal)
    # A tree that cannot be walked safely is not handed on; its diagnostics say why.
    return (None if fatal[0] else node), diagnostics


def _advice(problem: str) -> str:
    """What to do about the parser's least readable complaints: a tab, and a bare `>=` key (YAML reads
    a leading `>` as the start of folded text, inside a flow mapping as no token at all)."""
    if "found character '\\t' that cannot start any token" in problem:
        return "; indent with spaces, not tabs"
    if any(sign in problem for sign in ("found character '>' that cannot", "indentation indicators, but found '='")):
        return '; quote a comparator written as a key, e.g. {metric: D95%, ">=": 50 Gy}'
    return ""


def _check(
    node: Node, path: Path, ancestors: set[int], out: list[Diagnostic], count: list[int], fatal: list[bool]
) -> None:
    count[0] += 1
    if count[0] > MAX_VALUES or len(path) > MAX_DEPTH:
        if not fatal[0]:
            too_large = f"the document is too large: over {MAX_VALUES} values or {MAX_DEPTH} levels"
            out.append(_at(node, path[:MAX_DEPTH], too_large))
        fatal[0] = True
        return
    if id(node) in ancestors:
        out.append(_at(node, path, "a YAML alias refers to a value that contains it (recursive alias)"))
        fatal[0] = True
        return
    if node.tag not in _STANDARD_TAGS:
        out.append(_at(node, path, f'unsupported YAML tag "{node.tag}": only plain values, lists and mappings'))
        return
    if isinstance(node, ScalarNode):
        if node.tag == _BOOL and node.style is None and node.value.lower() not in ("true", "false"):
            # yes / no / on / off are booleans to YAML 1.1 (PyYAML) and text to YAML 1.2, which editors checking
            # the schema read: read as text, as they do, so the two agree (`site: no`, an alias `ON` for the optic
            # nerve stay text; `if_contoured: yes` is refused by its model as not true or false).
            node.tag = _STR
        return
    inner = ancestors | {id(node)}
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _check(item, (*path, index), inner, out, count, fatal)
        return
    seen: dict[str, Node] = {}
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            out.append(_at(key_node, path, 'YAML merge keys ("<<") are not supported: use `extends` for templates'))
            # The keys it would merge are missing, so checking on would report each as missing too.
            fatal[0] = True
            continue
        if not isinstance(key_node, ScalarNode) or key_node.tag not in _STANDARD_TAGS:
            out.append(_at(key_node, path, "a mapping key must be plain text"))
            continue
        key = key_node.value
        if key in seen:
            first = seen[key].start_mark
            out.append(
                _at(key_node, (*path, key), f'duplicate key "{key}" (first written at line {first.line + 1})')
            )
            continue
        seen[key] = key_node
        _check(value_node, (*path, key), inner, out, count, fatal)


def _at(node: Node, path: Path, message: str) -> Diagnostic:
    mark = node.start_mark
    return Diagnostic(mark.name, mark.line + 1, mark.column + 1, format_loc(path), message)


def to_document(node: Node) -> tuple[YamlDocument, list[Diagnostic]]:
    """Plain data and positions from a checked node tree; unreadable scalars become diagnostics."""
    document = YamlDocument(data=None)
    diagnostics: list[Diagnostic] = []
    constructor = SafeConstructor()
    document.data = _convert(node, (), document, constructor, diagnostics)
    return document, diagnostics


def _convert(
    node: Node, path: Path, document: YamlDocument, constructor: SafeConstructor, out: list[Diagnostic]
) -> Any:
    document.values[path] = position_of(node.start_mark)
    if isinstance(node, MappingNode):
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            document.keys[(*path, key)] = position_of(key_node.start_mark)
            mapping[key] = _convert(value_node, (*path, key), document, constructor, out)
        return mapping
    if isinstance(node, SequenceNode):
        return [_convert(item, (*path, index), document, constructor, out) for index, item in enumerate(node.value)]
    try:
        return constructor.construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as error:
        problem = getattr(error, "problem", None) or str(error)
        out.append(_at(node, path, f'cannot read value "{node.value}": {problem}'))
        return None
