"""Loading a protocol file: templates, validation, and errors that point at lines.

Pydantic reports errors by model path (`loc`); the YAML reader knows where each value was
written. This module joins the two so that every error reads
`file:line:column: path: message`, and fills in the source location of goals and terms.

A file with `template: true` is a site template: it is checked as a `SiteTemplate` (every
key optional) and can be read with `load_protocol_or_template`, but `load_protocol`, which
hands a protocol to planning, refuses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticSerializationError
from yaml.nodes import MappingNode, ScalarNode

from specc.protocol.diagnostics import (
    Diagnostic,
    Issue,
    ProtocolConsistencyError,
    ProtocolError,
    format_loc,
)
from specc.protocol.goals import COMPARATORS, Goal, GoalMapping
from specc.protocol.goals_only import goals_only_issues
from specc.protocol.models import (
    FILE_CONTEXT,
    Prescription,
    Protocol,
    ProtocolDocument,
    ProtocolSource,
    SiteTemplate,
    goal_layout,
)
from specc.protocol.suggest import did_you_mean, near_match
from specc.protocol.volume_table import VolumeTableMapping
from specc.protocol.templates import (
    EXTENDS, LIMITS_FOR_DOSE_PER_FRACTION, OWN_KEYS, TEMPLATE, LoosenedGoal, ReadProtocol, loosened_goals,
    read_protocol_tree, value_of, written_goal_paths,
)
from specc.protocol.yaml_source import Path as DataPath
from specc.protocol.yaml_source import Position, YamlDocument, compose, to_document
from specc.terms import KINDS
from specc.terms.base import SourceLocation

# Fields the loader fills in; a protocol file may not set them.
_INTERNAL_KEYS = ("source",)

_Document = typing.TypeVar("_Document", bound=ProtocolDocument)


def load_protocol(path: str | Path, root: str | Path | None = None) -> Protocol:
    """The validated, template-merged protocol in `path`, ready for planning.

    Templates (`extends`) must lie under `root`, by default the folder of `path`. Raises
    `ProtocolError` listing every problem found, those of its templates included; a site
    template (`template: true`) is one.
    """
    # _load refuses a site template when told to, so what comes back is a Protocol.
    return typing.cast(Protocol, _load(Path(path), root, template_allowed=False))


def load_protocol_or_template(path: str | Path, root: str | Path | None = None) -> Protocol | SiteTemplate:
    """What `path` holds, validated: a protocol, or a site template checked on its own.

    For checking a library of protocol files (`specc validate`), where templates are files
    like any other. Raises `ProtocolError` listing every problem found.
    """
    return _load(Path(path), root, template_allowed=True)


def _load(path: Path, root: str | Path | None, *, template_allowed: bool) -> Protocol | SiteTemplate:
    """`path` validated merged with its templates, and each template validated as the file it is.

    The merge drops what a file replaces of its template (a goal of the same structure, metric and side, a
    value of the same key): validated merged only, a template goal with an unknown unit passed unseen in every
    protocol replacing it, and the protocol was "OK" while `specc validate` of its template failed (audit
    s20/t1 F5). A template's own problem is reported once: not where the merged reading already names its place.
    """
    tree, source = _read(path, str(path), root)
    try:
        document = _validate(tree, source, template_allowed=template_allowed)
        problems: list[Diagnostic] = []
    except ProtocolError as error:
        problems = error.diagnostics
    if tree.node is not None:  # a chain that could not be read is reported as such, each file's reading once
        named = {(d.file, d.line, d.column) for d in problems if d.line is not None}
        problems += [d for d in _templates_problems(tree) if (d.file, d.line, d.column) not in named]
    if problems:
        raise ProtocolError(_in_reading_order(problems, source.files))
    return document


def _templates_problems(tree: ReadProtocol) -> list[Diagnostic]:
    """What is wrong with each template of `tree` validated on its own (as `specc validate TEMPLATE` does), each
    message saying so: read beside the protocol's, `goals.PTV: undefined structure "PTV"` in the template seemed
    to contradict the protocol that defines PTV (review s20/r1 F5). A file extended without `template: true` is
    checked as the complete protocol it then claims to be; the message says how to mark a partial one. Each is
    validated as this reading of the chain read it (`ReadProtocol.templates`), not read again from disk."""
    problems: list[Diagnostic] = []
    for display, read in tree.templates:
        try:
            _validate(read, _source(read, display), template_allowed=True)
        except ProtocolError as error:
            marked = _marked_template(read.node)
            why = ("found checking that template on its own, as `specc validate` checks it" if marked else
                   "found checking that file on its own: without `template: true` it is a protocol that must be "
                   "complete; mark a partial base `template: true`")
            problems += [dataclasses.replace(d, message=f"{d.message} ({why})") if d.file == display else d
                         for d in error.diagnostics]
    return problems


def _marked_template(node: Any) -> bool:
    """Whether a protocol file's node marks it a template as `_template_flag` reads it: a `template` key whose value
    is not false (one neither true nor false is reported there and checked as a template)."""
    flag = value_of(node, TEMPLATE) if isinstance(node, MappingNode) else None
    return flag is not None and not (isinstance(flag, ScalarNode) and flag.value.lower() == "false")


def _read(path: Path, display: str, root: str | Path | None) -> tuple[ReadProtocol, ProtocolSource]:
    if not path.is_file():
        raise ProtocolError([Diagnostic(display, None, None, "", "protocol file not found")])
    tree = read_protocol_tree(path, display, Path(root) if root is not None else path.parent)
    return tree, _source(tree, display)


def _source(tree: ReadProtocol, display: str) -> ProtocolSource:
    """Where the protocol read as `tree` (named `display` in messages) comes from: its files and their SHA-256."""
    versions = {file: tree.versions.get(file) for file in tree.files[1:]}
    return ProtocolSource(path=display, files=tree.files, sha256=tree.sha256, template_versions=versions)


def parse_protocol_text(text: str, filename: str = "<text>") -> Protocol:
    """A protocol from YAML text (no templates: `extends` needs a file to resolve against)."""
    node, diagnostics = compose(text, filename)
    if isinstance(node, MappingNode):
        for key, _ in node.value:
            if key.value == EXTENDS:
                diagnostics.append(_at(key.start_mark, EXTENDS, "extends needs a protocol file: use load_protocol"))
    elif node is not None:
        diagnostics.append(_at(node.start_mark, "", "a protocol is a mapping of keys (specc:, name:, ...)"))
        node = None
    source = ProtocolSource(path=filename, files=[filename], sha256=hashlib.sha256(text.encode()).hexdigest())
    tree = ReadProtocol(node, [filename], source.sha256, diagnostics, goal_paths=written_goal_paths(node))
    return typing.cast(Protocol, _validate(tree, source, template_allowed=False))


def revise_protocol(protocol: Protocol, **changes: Any) -> Protocol:
    """`protocol` with `changes` (its fields by name, as `model_copy(update=...)` takes them), every field
    validated again by the rules a file is validated by; raises `ProtocolError` naming each bad field.

    `model_copy` validates nothing: a weight of -50, a fraction count of 0 or a number given as text
    reached the solver (audit b3 N1). Here the whole content, sub-models changed with `model_copy`
    included, goes through `Protocol`'s validators. The result keeps the protocol's source, so a plan of
    it is recorded as changed in memory after loading that file (with the content's SHA-256), and each
    goal, term and structure keeps the file line it was written on. `specc.plan` and `PlanSession.plan`
    do this themselves for a protocol whose content is no longer the file's.
    """
    changed = protocol.model_copy(update=changes)
    where = _in_memory_name(changed.source)
    try:
        data = changed.model_dump(warnings=False)
    except PydanticSerializationError as error:
        raise ProtocolError([Diagnostic(where, None, None, "", f"cannot read the protocol's content: {error}")]) from None
    try:
        revised = Protocol.model_validate(data)
    except ValidationError as error:
        raise ProtocolError([_unlocated(where, details) for details in error.errors(include_url=False)]) from None
    except ProtocolConsistencyError as error:
        raise ProtocolError([dataclasses.replace(d, file=where) for d in error.diagnostics]) from None
    return _with_carried_sources(revised, changed)


def _in_memory_name(source: ProtocolSource | None) -> str:
    """How an error names a protocol changed (or built) in memory: no file line says what it holds."""
    if source is None:
        return "<protocol built in memory>"
    return f"{source.changed_from or source.path} (changed in memory)"


def _unlocated(where: str, error: ErrorDetails) -> Diagnostic:
    """A pydantic error of a protocol built in Python: its field path, no line."""
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        message = f'unknown field "{loc[-1]}"'
    elif error["type"] == "missing":
        message = f'missing required field "{loc[-1]}"'
    else:
        message = _message(error)
    return Diagnostic(where, None, None, format_loc(loc), message)


def _with_carried_sources(revised: Protocol, changed: Protocol) -> Protocol:
    """`revised` with the source, and the file positions of its goals, terms, structures, dose levels and prior
    course (each with its path and fields), that `changed` carried (validation leaves them out, like a dump)."""
    goals = [
        goal.model_copy(update={"source": getattr(before, "source", None)})
        for goal, before in zip(revised.goals, changed.goals)
    ]
    optimization = revised.optimization
    if optimization is not None and changed.optimization is not None:
        terms = [
            term.model_copy(update={"source": getattr(before, "source", None)})
            for term, before in zip(optimization.terms, changed.optimization.terms)
        ]
        optimization = optimization.model_copy(update={"terms": terms})
    structures = {
        name: spec.model_copy(update={"source": getattr(changed.structures.get(name), "source", None)})
        for name, spec in revised.structures.items()
    }
    before = changed.prescription  # a mapping given to `model_copy` carries no source
    prescription = _prescription_placed(
        revised.prescription, [getattr(level, "source", None) for level in getattr(before, "levels", ())],
        getattr(getattr(before, "prior", None), "source", None),
    )
    carried = revised.model_copy(update={
        "goals": goals, "optimization": optimization, "structures": structures, "prescription": prescription,
        "source": changed.source,
    })
    carried._loosened_goals = _still_loosened(changed._loosened_goals, goals)
    carried._fractionation_places = changed._fractionation_places  # the key's and extends' lines, judged anew
    return carried


def _prescription_placed(
    prescription: Prescription, levels: Sequence[SourceLocation | None], prior: SourceLocation | None
) -> Prescription:
    """`prescription` with the sources of its dose levels (in order; None past the end) and of its prior course."""
    placed = [level.model_copy(update={"source": levels[index] if index < len(levels) else None})
              for index, level in enumerate(prescription.levels)]  # a copy keeps the level's binding to its course
    course = prescription.prior.model_copy(update={"source": prior}) if prescription.prior is not None else None
    return prescription.model_copy(update={"levels": placed, "prior": course})


def _still_loosened(loosened: list[LoosenedGoal], goals: list[Goal]) -> list[LoosenedGoal]:
    """The loosened template goals of the goals the revised protocol still holds where they were written (file,
    line and column: a flow list writes several goals on one line), each judged again against its own template
    goal: a protocol tuned in memory keeps saying that a template's limit was given up (review R2 F7), also when a
    goal was loosened further (R3 F4); a goal changed back to ask as much as the template, or removed, no longer
    does."""
    at = {(goal.source.file, goal.source.line, goal.source.column): goal for goal in goals if goal.source is not None}
    kept = []
    for found in loosened:
        goal = at.get((found.warning.file, found.warning.line, found.warning.column))
        if goal is not None and (judged := found.judged_again(goal)) is not None:
            kept.append(judged)
    return kept


def _at(mark: Any, path: str, message: str) -> Diagnostic:
    return Diagnostic(mark.name, mark.line + 1, mark.column + 1, path, message)


def _validate(tree: ReadProtocol, source: ProtocolSource, *, template_allowed: bool) -> Protocol | SiteTemplate:
    node = tree.node
    if node is None:
        raise ProtocolError(tree.diagnostics)
    document, unreadable = to_document(node)
    diagnostics = [*tree.diagnostics, *unreadable]
    locator = _Locator(document, source.path, tree.goal_paths, extends=len(source.files) > 1)
    data = document.data
    is_template, template_problems = _template_flag(data, locator, template_allowed)
    diagnostics += template_problems
    data.pop(TEMPLATE, None)
    for loc in _internal_keys(data):
        diagnostics.append(locator.diagnostic(loc, f'unknown key "{loc[-1]}"', at_key=True))
        parent = data
        for part in loc[:-1]:
            parent = parent[part]
        del parent[loc[-1]]
    model = SiteTemplate if is_template else Protocol
    protocol: Protocol | SiteTemplate | None = None
    try:
        protocol = model.model_validate(data, context=FILE_CONTEXT)
    except ValidationError as error:
        errors = _without_misspelled_missing(error.errors(include_url=False))
        diagnostics += [locator.from_pydantic(details) for details in errors]
    except ProtocolConsistencyError as error:
        diagnostics += [locator.from_issue(issue) for issue in error.issues]
    if diagnostics or protocol is None:
        raise ProtocolError(_in_reading_order(diagnostics, source.files))
    located = _with_sources(protocol, locator, source)
    # the content as validated, fingerprinted: a plan of it changed in memory later is recorded as such
    fingerprinted = source.model_copy(update={"content_sha256": ProtocolSource.fingerprint(located)})
    located = located.model_copy(update={"source": fingerprinted})
    prescription = located.prescription
    reference = located.reference_dose if prescription is not None else (lambda structure, course: None)
    by_warning = {found.warning: found for found in loosened_goals(tree.replacements, tree.goal_paths, reference)}
    located._loosened_goals = [by_warning[warning] for warning in _in_reading_order(list(by_warning), source.files)]
    located._fractionation_places = _fractionation_places(located, locator, tree.extends_at)
    if isinstance(located, Protocol):
        refusals = [locator.from_issue(issue) for issue in goals_only_issues(located)]
        located._derivation_refusals = _in_reading_order(refusals, source.files)
    return located


def _fractionation_places(
    protocol: ProtocolDocument, locator: _Locator, extends_at: Position | None
) -> tuple[Diagnostic, str] | None:
    """Where a dose per fraction outside `limits_for_dose_per_fraction` is said, and where the key is written: at
    the file's `extends:` line when a template states it (the line that brought the template's limits in), at
    the key when the file itself does."""
    if protocol.limits_for_dose_per_fraction is None:
        return None
    key = locator.diagnostic((LIMITS_FOR_DOSE_PER_FRACTION,), "", at_key=True)
    written = f"{key.file}:{key.line}:{key.column}"
    if extends_at is None or key.file == locator.main_file:
        return key, written
    return Diagnostic(extends_at.file, extends_at.line, extends_at.column, EXTENDS, ""), written


def _template_flag(data: dict[str, Any], locator: _Locator, template_allowed: bool) -> tuple[bool, list[Diagnostic]]:
    """Whether the file is a site template, and what is wrong with its `template` key.

    A value other than true or false is reported and the file checked as a template, which
    adds no complaints about keys a template may leave out.
    """
    if TEMPLATE not in data:
        return False, []
    flag = data[TEMPLATE]
    if not isinstance(flag, bool):
        message = f"template is true (a site template) or false (a complete protocol), got {_describe(flag)}"
        return True, [locator.diagnostic((TEMPLATE,), message)]
    if flag and not template_allowed:
        message = "this file is a site template (template: true); plan a protocol that extends it"
        return True, [locator.diagnostic((TEMPLATE,), message, at_key=True)]
    return flag, []


def _without_misspelled_missing(errors: Sequence[ErrorDetails]) -> list[ErrorDetails]:
    """The errors less each "missing key" whose key an unknown key beside it misspells.

    `fractons:` in place of `fractions:` is one typo: the unknown key's message names the
    missing one ("did you mean"), so a second message about the same key would only add noise.
    """
    misspelled = {
        (tuple(error["loc"][:-1]), _suggested_key(tuple(error["loc"])))
        for error in errors
        if error["type"] == "extra_forbidden"
    }
    return [
        error
        for error in errors
        if error["type"] != "missing" or (tuple(error["loc"][:-1]), error["loc"][-1]) not in misspelled
    ]


def _suggested_key(loc: tuple[str | int, ...]) -> str | None:
    """The allowed key that the unknown key at pydantic `loc` most likely misspells."""
    key = str(loc[-1])
    match = near_match(key, _allowed_keys(loc[:-1]))
    return match if match != key else None


def _internal_keys(data: Any) -> list[DataPath]:
    """Where the file writes a key only the loader fills in (`source`), at the top or in an item it places."""
    found: list[DataPath] = [(key,) for key in _INTERNAL_KEYS if key in data]
    for loc, item in _placed_items(data):
        if isinstance(item, dict):
            found += [(*loc, key) for key in _INTERNAL_KEYS if key in item]
    return found


def _placed_items(data: dict[str, Any]) -> Iterator[tuple[DataPath, Any]]:
    """Each item the loader records the place of (`_with_sources`) other than goals, which the grammar reads, as
    written in `data` (anything, before validation): structures, dose levels, the prior course, terms."""
    structures = data.get("structures")
    if isinstance(structures, dict):
        yield from ((("structures", name), spec) for name, spec in structures.items())
    prescription = data.get("prescription")
    if isinstance(prescription, dict):
        levels = prescription.get("levels")
        if isinstance(levels, list):
            yield from ((("prescription", "levels", index), level) for index, level in enumerate(levels))
        yield ("prescription", "prior"), prescription.get("prior")
    optimization = data.get("optimization")
    terms = optimization.get("terms") if isinstance(optimization, dict) else None
    if isinstance(terms, list):
        yield from ((("optimization", "terms", index), term) for index, term in enumerate(terms))


def _in_reading_order(diagnostics: list[Diagnostic], files: list[str]) -> list[Diagnostic]:
    order = {name: index for index, name in enumerate(files)}
    unique = list(dict.fromkeys(diagnostics))
    return sorted(unique, key=lambda d: (order.get(d.file, len(order)), d.file, d.line or 0, d.column or 0))


def _with_sources(protocol: _Document, locator: _Locator, source: ProtocolSource) -> _Document:
    goals = [
        goal.model_copy(update={"source": locator.location(locator.raw_loc(("goals", index)))})
        for index, goal in enumerate(protocol.goals)
    ]
    optimization = protocol.optimization
    if optimization is not None:
        terms = [
            term.model_copy(update={"source": locator.location(("optimization", "terms", index))})
            for index, term in enumerate(optimization.terms)
        ]
        optimization = optimization.model_copy(update={"terms": terms})
    structures = {
        name: spec.model_copy(update={"source": locator.location(("structures", name), at_key=True)})
        for name, spec in protocol.structures.items()
    }
    prescription = protocol.prescription
    if prescription is not None:
        levels = [locator.location(("prescription", "levels", index)) for index in range(len(prescription.levels))]
        prior = locator.location(("prescription", "prior")) if prescription.prior is not None else None
        prescription = _prescription_placed(prescription, levels, prior)
    return protocol.model_copy(update={
        "goals": goals, "optimization": optimization, "structures": structures, "prescription": prescription,
        "source": source,
    })


class _FieldPlaces(Mapping[str, SourceLocation]):
    """Where each field of one placed item is written (`SourceLocation.fields`), made when an error asks for it.

    Every goal, term, structure, dose level and prior course is placed on each load, but only an error found
    against a case reads a field's place, and then one field of one item: making each field's `SourceLocation`
    up front was a quarter of the placing work. The file's positions are kept (shared by all items) instead."""

    def __init__(self, values: Mapping[DataPath, Position], path: DataPath, written: DataPath,
                 keys: tuple[str, ...]) -> None:
        self._values = values  # every position of the merged document, by its path there
        self._path = path  # the item's path in the merged document
        self._written = written  # its path in the file that writes it, which an error names
        self._keys = keys

    def __getitem__(self, key: str) -> SourceLocation:
        if key not in self._keys:
            raise KeyError(key)
        at = self._values[(*self._path, key)]
        return SourceLocation(at.file, at.line, at.column, (*self._written, key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return repr(dict(self))


class _Locator:
    """Maps model paths to YAML positions and pydantic errors to diagnostics."""

    def __init__(
        self, document: YamlDocument, main_file: str, goal_paths: dict[Position, DataPath], extends: bool = False
    ) -> None:
        self.document = document
        self.main_file = main_file
        self.goal_paths_written = goal_paths  # each goal's path in the file that wrote it, by where it is written
        self.extends = extends  # the file extends a template, whose header keys it does not take
        goals = document.data.get("goals") if isinstance(document.data, dict) else None
        self.goal_paths = [path for path, _ in goal_layout(goals)] if isinstance(goals, dict) else None

    def raw_loc(self, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
        """A model path with goal indices turned into the `goals: {structure: [...]}` layout."""
        if len(loc) >= 2 and loc[0] == "goals" and isinstance(loc[1], int) and self.goal_paths is not None:
            if 0 <= loc[1] < len(self.goal_paths):
                return ("goals", *self.goal_paths[loc[1]], *loc[2:])
        return loc

    def as_written(self, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
        """A path into the merged goals as the file that wrote the goal names it: a protocol's first Rectum goal is
        `goals.Rectum[0]` in its file, though it follows the template's Rectum goals in the merged list."""
        if len(path) < 3 or path[0] != "goals" or not isinstance(path[2], int):
            return path
        at = self.document.values.get(path[:3])
        written = self.goal_paths_written.get(at) if at is not None else None
        return path if written is None else (*written, *path[3:])

    def _walk(self, loc: tuple[str | int, ...]) -> tuple[DataPath, Any]:
        """The longest part of `loc` present in the data (skipping union tags such as a term's kind), and the value
        written there."""
        current = self.document.data
        matched: list[str | int] = []
        for part in loc:
            if isinstance(current, dict) and isinstance(part, str) and part in current:
                current = current[part]
            elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
                current = current[part]
            else:
                continue
            matched.append(part)
        return tuple(matched), current

    def position(self, path: DataPath, at_key: bool = False) -> Position:
        if at_key and path in self.document.keys:
            return self.document.keys[path]
        # The longest known prefix; the empty one, the document itself, is always known.
        known = (path[:cut] for cut in range(len(path), -1, -1) if path[:cut] in self.document.values)
        return self.document.values[next(known)]

    def location(self, loc: tuple[str | int, ...], at_key: bool = False) -> SourceLocation:
        """Where `loc` is written (its key, `at_key`), with its path in the file that writes it and where each of its
        fields is: a compile error found against a case names the field to change from these, with no second
        reading of the files (a mapping merged key by key with a template's has its fields in both files)."""
        path, value = self._walk(loc)
        position = self.position(path, at_key=at_key)
        written = self.as_written(path)
        keys = tuple(value) if isinstance(value, dict) else ()  # a goal written as text has none
        fields = _FieldPlaces(self.document.values, path, written, keys)
        return SourceLocation(position.file, position.line, position.column, written, fields)

    def diagnostic(self, loc: tuple[str | int, ...], message: str, at_key: bool = False, missing: str = "") -> Diagnostic:
        path, _ = self._walk(loc)
        position = self.position(path, at_key=at_key)
        shown = (*path, missing) if missing else path
        return Diagnostic(position.file, position.line, position.column, format_loc(self.as_written(shown)), message)

    def from_issue(self, issue: Issue) -> Diagnostic:
        """A consistency issue at its line; the other place it involves, if any, named with its line (it may
        be in another file of a template chain: the one to change)."""
        message = issue.message
        if issue.related is not None:
            related = self.raw_loc(issue.related)
            other = self.position(self._walk(related)[0], at_key=True)
            named = format_loc(self.as_written(related))
            message += f"; {named} is at {other.file}:{other.line}:{other.column}"
        return self.diagnostic(self.raw_loc(issue.loc), message, at_key=issue.at_key)

    def from_pydantic(self, error: ErrorDetails) -> Diagnostic:
        model_loc = tuple(error["loc"])
        loc = self.raw_loc(model_loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(model_loc[-1])
            allowed = _allowed_keys(model_loc[:-1])
            suggestion = _suggested_key(model_loc)
            listed = f" (allowed: {', '.join(allowed)})" if allowed else ""
            hint = f' (did you mean "{suggestion}"?)' if suggestion else listed
            return self.diagnostic(loc, f'unknown key "{key}"{hint}', at_key=True)
        if kind == "missing":
            key = str(loc[-1])
            own = self.extends and len(loc) == 1 and key in OWN_KEYS
            note = f" (each file states its own {key}: it is not taken from the template it extends)" if own else ""
            return self.diagnostic(loc[:-1], f'missing required key "{key}"{note}', missing=key)
        return self.diagnostic(loc, _message(error))


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


_TYPE_MESSAGES = {
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "dict_type": "expected a mapping of keys",
    "list_type": "expected a list",
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "date_type": "expected a date YYYY-MM-DD",
    "date_parsing": "expected a date YYYY-MM-DD",
    "date_from_datetime_parsing": "expected a date YYYY-MM-DD",
    "date_from_datetime_inexact": "expected a date YYYY-MM-DD (no time of day)",
}


def _message(error: ErrorDetails) -> str:
    kind, value, context = error["type"], error.get("input"), error.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        return str(context.get("error", error["msg"]))
    if kind == "union_tag_invalid":
        tag = str(context.get("tag"))
        return f'unknown kind "{tag}"{did_you_mean(tag, KINDS)} (kinds: {", ".join(KINDS)})'
    if kind == "union_tag_not_found":
        return f'missing required key "kind" (kinds: {", ".join(KINDS)})'
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(context.get("expected", "")))
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        return f"expected one of {', '.join(options)}, got {_describe(value)}{hint}"
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]}, got {_describe(value)}"
    if kind == "too_short":
        return f"needs at least {context.get('min_length')} item(s)"
    message = error["msg"]
    if message.startswith("Input should be "):
        return f"must be {message.removeprefix('Input should be ')}, got {_describe(value)}"
    if message.startswith("String should "):
        return f"text should {message.removeprefix('String should ')}, got {_describe(value)}"
    return f"{message}, got {_describe(value)}"


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    """Keys allowed by the model at a pydantic `loc` (for near-match suggestions)."""
    if not loc:  # the loader reads these two before validation
        return [EXTENDS, TEMPLATE, *_field_keys(ProtocolDocument)]
    if loc[:1] == ("goals",):
        # a key inside a goal's comparator: its limit written as a table by a structure's volume
        # (pydantic's loc names the table's union member, "table", after the comparator)
        in_table = any(part in COMPARATORS for part in loc[1:])
        return _field_keys(VolumeTableMapping if in_table else GoalMapping)
    annotation: Any = ProtocolDocument
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    model = _model_of(annotation)
    return _field_keys(model) if model is not None else []


def _field_keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items() if name not in _INTERNAL_KEYS]


def _members(annotation: Any) -> list[Any]:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [member for arg in typing.get_args(annotation) for member in _members(arg) if member is not type(None)]
    return [annotation]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    models = [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
    return models[0] if len(models) == 1 else None


def _step(annotation: Any, part: str | int) -> Any:
    members = _members(annotation)
    if isinstance(part, str):
        for member in members:  # a discriminated union's tag names the member
            if isinstance(member, type) and issubclass(member, BaseModel) and "kind" in member.model_fields:
                if member.model_fields["kind"].default == part:
                    return member
    if len(members) != 1:
        return None
    member = members[0]
    origin, args = typing.get_origin(member), typing.get_args(member)
    if origin is list and isinstance(part, int):
        return args[0]
    if origin is dict and isinstance(part, str):
        return args[1]
    if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
        field = member.model_fields.get(part) or next(
            (info for info in member.model_fields.values() if info.alias == part), None
        )
        return field.annotation if field is not None else None
    return None

