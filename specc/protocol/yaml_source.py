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
        return None, [Diagnostic(filename, line, column, "", f"invalid YAML: {problem}{_advice(error, text)}")]
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


def _advice(error: yaml.MarkedYAMLError, text: str) -> str:
    """What to do about the parser's least readable complaints, where the text at its marks makes the cause likely:
    a tab; a bare `>` or `>=` key (YAML reads a leading `>` as the start of folded text, inside a flow mapping as no
    token at all); a ": " inside a plain value (YAML reads a second key); a key indented deeper than the key above
    it (YAML reads it as more of that key's value, and complains a line late); a quote left open."""
    problem = error.problem or ""
    lines = text.splitlines()
    if "found character '\\t' that cannot start any token" in problem:
        return "; indent with spaces, not tabs"
    if "found character '>' that cannot" in problem or (
        error.context == "while scanning a block scalar" and _text_at(lines, error.context_mark, 2) in (">:", ">=")
    ):
        return '; quote a comparator written as a key, e.g. {metric: D95%, ">=": 50 Gy}'
    if problem == "mapping values are not allowed here" and error.problem_mark is not None:
        return _colon_advice(lines, error.problem_mark)
    if error.context == "while scanning a quoted scalar" and error.context_mark is not None:
        opened_at = error.context_mark
        return f"; the quote opened at line {opened_at.line + 1}, column {opened_at.column + 1} is not closed"
    opened = _quoted_across_lines_to(text, error.problem_mark)
    if opened is not None:
        quote = lines[opened.line][opened.column]
        return (f"; the quoted text opened at line {opened.line + 1}, column {opened.column + 1} runs on to line "
                f"{error.problem_mark.line + 1}, where YAML took a {quote} for its end: is the closing {quote} of "
                f"line {opened.line + 1} missing?")
    return ""


def _text_at(lines: list[str], mark: yaml.Mark | None, width: int) -> str:
    """The `width` characters of the text at `mark`."""
    if mark is None or mark.line >= len(lines):
        return ""
    return lines[mark.line][mark.column : mark.column + width]


# `key: value` or `- key: value` on one line, the value plain text (not quoted, not a flow or block collection).
_KEY_START = re.compile(r"\s*(?:-\s+)?")
_KEY_AND_PLAIN_VALUE = re.compile(r"^(?P<key>\s*(?:-\s+)?[^\s#'\"{\[\-?][^#]*?):[ \t]+(?P<value>[^\s'\"{\[|>&*!#].*)$")


def _colon_advice(lines: list[str], mark: yaml.Mark) -> str:
    """Why YAML found a key where none may start: a ": " inside the plain value of a key written earlier on the line
    (`name: Prostate SIB: 78 Gy`), or a key indented deeper than the plain `key: value` line above it, which YAML
    reads as more of that value (it complains at the deeper line, the slip may be either's indent)."""
    if mark.line >= len(lines):
        return ""
    line = lines[mark.line]
    written = _KEY_AND_PLAIN_VALUE.match(line)
    if written is not None and written.start("value") < mark.column:
        value = written["value"].split(" #", 1)[0].rstrip()
        quoted = f"'{value.replace(chr(39), chr(39) * 2)}'" if '"' in value else f'"{value}"'
        return (f'; the ": " inside the value makes YAML read another key: quote the value, '
                f"{written['key'].strip()}: {quoted}")
    above = next((index for index in range(mark.line - 1, -1, -1)
                  if lines[index].strip() and not lines[index].lstrip().startswith("#")), None)
    if above is None:
        return ""
    previous = _KEY_AND_PLAIN_VALUE.match(lines[above])
    indent = len(line) - len(line.lstrip(" "))
    key_column = _KEY_START.match(lines[above]).end()  # type: ignore[union-attr]  (it matches any line)
    if previous is None or indent <= key_column:
        return ""
    return (f"; YAML read this line as more of the value on line {above + 1} ({lines[above].strip()}), since it "
            f"starts deeper (column {indent + 1}) than that line's key (column {key_column + 1}): the keys of one "
            "mapping start in the same column")


def _quoted_across_lines_to(text: str, mark: yaml.Mark | None) -> yaml.Mark | None:
    """Where a quoted text starts that runs over several lines and ends on `mark`'s line: a YAML error right after
    one is most likely a quote left open (its text then runs on to the next quote, which YAML takes for its end)."""
    if mark is None:
        return None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.line > mark.line:
                break
            if (isinstance(token, yaml.ScalarToken) and token.style in ('"', "'")
                    and token.start_mark.line < token.end_mark.line == mark.line):
                return token.start_mark
    except yaml.YAMLError:  # the scanner stops where the parser's error is, or later: the tokens before it stand
        pass
    return None


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
