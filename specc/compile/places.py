"""Where a protocol item the compiler refuses is written: `file:line:column: field.path: message`.

A protocol file's own errors say where to edit, as `specc validate` says them (`Diagnostic`); an error
found only against a case (a dvh volume larger than the structure, a structure the case lacks, a
derived structure empty on its grid) must say it the same way. The loader records where each goal,
term and structure is written (`source`), not its path in that file nor where its fields are, so both
are read back from the protocol's files, and only from the very bytes the protocol was read from (their
SHA-256 is `ProtocolSource.sha256`): a file edited since, a protocol parsed from text or built in memory
gives the position recorded and no path rather than another text's. The path is the one the file
that wrote the item gives it: a term or goal inherited from a template is named in the template.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from yaml import Mark
from yaml.nodes import MappingNode, Node, SequenceNode

from specc.protocol.diagnostics import Diagnostic, format_loc
from specc.protocol.templates import value_of
from specc.protocol.yaml_source import Path as DataPath
from specc.protocol.yaml_source import compose, position_of

if TYPE_CHECKING:
    from specc.protocol import Protocol
    from specc.terms.base import SourceLocation


def said_at(
    protocol: Protocol,
    source: SourceLocation | None,
    message: str,
    *,
    at_key: bool = False,
    field: str | None = None,
    path: DataPath = (),
) -> str:
    """`message` where `source` is written (a mapping key there, `at_key`: a structure's name), as
    `file:line:column: field.path: message`; at its `field` (a key of the item: the dvh term's `volume`)
    where the file writes one. `path`: the item's path where the model gives it (a structure's), for a
    protocol whose files cannot be read back; without `source`, the place of `path` itself."""
    trees = protocol_trees(protocol)
    shown, node, mark = path, None, None
    if source is not None:
        if (found := _find(trees.get(source.file), source, at_key)) is not None:
            shown, node, mark = found
    elif path and (node := _in_files(trees, path)) is not None:
        mark = node.start_mark
    if field is not None and shown:  # a field of an item whose path is unknown would be a path of its own
        written = value_of(node, field) if node is not None else None
        if written is None and all(isinstance(part, str) for part in shown):  # mappings merge key by key
            written = _in_files(trees, (*shown, field))
        if written is not None:
            shown, mark = (*shown, field), written.start_mark
        elif not trees:  # the files cannot be read back: the model's path names the field
            shown = (*shown, field)
        # else the item does not write it (a goal a term is derived from, a field left to its default): the item
    if mark is not None:
        at = position_of(mark)
        return str(Diagnostic(at.file, at.line, at.column, format_loc(shown), message))
    if source is not None and source.line > 0:  # no path is better than a guessed one
        return str(Diagnostic(source.file, source.line, source.column, format_loc(shown), message))
    where = source.file if source is not None else protocol.source.path if protocol.source else "<protocol>"
    return str(Diagnostic(where, None, None, format_loc(shown), message))


def said_at_structure(protocol: Protocol, name: str, message: str, field: str | None = None) -> str:
    """`message` at structure `name`'s definition, `file:line:column: structures.NAME: message` (at its `field`,
    as `expression`, where the problem is in one); the protocol file alone for a structure the compiler added
    (a goals-only protocol's fall-off shell), which no file writes."""
    spec = protocol.structures.get(name)
    if spec is not None and spec.source is None and protocol.source is not None:
        return said_at(protocol, None, message)
    return said_at(protocol, spec.source if spec is not None else None, message, at_key=True, field=field,
                   path=("structures", name))


def protocol_trees(protocol: Protocol) -> dict[str, Node]:
    """Each file the protocol was read from, by its name in the sources, as its node tree (as the loader composed
    it); none where the files no longer hold the bytes read."""
    if protocol.source is None:
        return {}
    return _trees(tuple(protocol.source.files), protocol.source.sha256)


@functools.lru_cache(maxsize=8)
def _texts(files: tuple[str, ...], sha256: str) -> list[tuple[str, str]]:
    digest = hashlib.sha256()
    contents: list[tuple[str, bytes]] = []
    for file in files:
        try:
            data = Path(file).read_bytes()
        except OSError:  # moved, or the name of a text that was never a file
            return []
        digest.update(data)
        contents.append((file, data))
    if digest.hexdigest() != sha256:
        return []
    return [(file, data.decode("utf-8")) for file, data in contents]


@functools.lru_cache(maxsize=8)
def _trees(files: tuple[str, ...], sha256: str) -> dict[str, Node]:
    trees = {}
    for file, text in _texts(files, sha256):
        node, _ = compose(text, file)  # the loader read these very bytes without error
        if node is not None:
            trees[file] = node
    return trees


def _find(
    node: Node | None, source: SourceLocation, at_key: bool, path: DataPath = ()
) -> tuple[DataPath, Node, Mark] | None:
    """The path of the value written at `source` (of the mapping key written there, `at_key`), that value's node and
    the mark of what is written there; the outermost value where several start there (a block mapping starts at its
    first key)."""
    if node is None:
        return None
    if not at_key and _starts_at(node, source):
        return path, node, node.start_mark
    children: list[tuple[str | int, Node, Node | None]] = []
    if isinstance(node, MappingNode):
        children = [(key.value, value, key) for key, value in node.value]
    elif isinstance(node, SequenceNode):
        children = [(index, item, None) for index, item in enumerate(node.value)]
    for part, child, key in children:
        if at_key and key is not None and _starts_at(key, source):
            return (*path, part), child, key.start_mark
        if (found := _find(child, source, at_key, (*path, part))) is not None:
            return found
    return None


def _starts_at(node: Node, source: SourceLocation) -> bool:
    return (node.start_mark.line + 1, node.start_mark.column + 1) == (source.line, source.column)


def _in_files(trees: dict[str, Node], path: DataPath) -> Node | None:
    """The node at `path` in the first file that writes it: the protocol's own file wins over the templates it
    extends, the nearer template over the farther, as a merge of mappings takes them."""
    for tree in trees.values():
        node: Node | None = tree
        for part in path:
            if isinstance(part, int):
                node = node.value[part] if isinstance(node, SequenceNode) and part < len(node.value) else None
            else:
                node = value_of(node, part) if node is not None else None
            if node is None:
                break
        if node is not None:
            return node
    return None
