"""Template inheritance: `extends: base.yaml` merges a site template under a protocol.

Merge rules (applied on YAML nodes, so each value keeps the file and line it came from):
- mappings merge key by key, recursively; the including file wins;
- goals are matched by structure, metric, side (lower or upper bound) and the dose they are on
  (EQD2 / BED, this course): the including file's goals of one such key replace all the base's
  goals of that key, as a group in the place of the first, and goals of a new key are appended.
  A file's own goals are never matched with each other: two limits on one metric ("Max <= 45 Gy"
  and "Max <= 35 Gy (priority 2)") are both kept, written in a template or in its protocol. A
  structure's one goal written without a list is merged as a list of one (replaced as a whole, it
  took every other template goal of the structure with it). What a replacement gives up (a higher
  upper limit, a lower lower limit, a demoted priority, a wider or new acceptable variation) is
  allowed but said: `loosened_goals` locates each, for `specc validate`'s warnings and those of a plan's or a
  check's record (and the replacing goal's note in it);
- any other list (references, authors, levels, aliases, optimization terms) is replaced as a
  whole by the including file's list.
`extends` is resolved relative to the including file and must stay inside the protocol tree
(the main file's folder unless another root is given); cycles are errors.

`template: true` marks a file as a site template; it describes that one file, so it is not
inherited: a protocol extending a template is complete unless it says `template: true` itself.
`name`, `version` and `approval` describe one file too: inherited, a protocol that states none
would be planned, reported and compared as "... site template v1.0.0", approved by whoever
approved the template, so each file states its own (a protocol must state a name and a version).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from yaml import YAMLError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from specc.protocol.diagnostics import Diagnostic, format_loc
from specc.protocol.goals import (
    COMPARATORS,
    DEFAULT_PRIORITY,
    LOWER_BOUNDS,
    Course,
    Goal,
    GoalEntry,
    GoalMapping,
    Threshold,
    fields_from_mapping,
    parse_compact,
    read_at,
    span_text,
    table_points,
)
from specc.protocol.metrics import Metric
from specc.protocol.plausibility import course_text
from specc.protocol.units import Dose, format_number, places_apart
from specc.protocol.yaml_source import Path as DataPath
from specc.protocol.yaml_source import Position, compose, position_of

if TYPE_CHECKING:
    from specc.protocol.models import Prescription

EXTENDS = "extends"
TEMPLATE = "template"
# The key by which a template states the dose per fraction its physical dose limits are for.
LIMITS_FOR_DOSE_PER_FRACTION = "limits_for_dose_per_fraction"
# Keys that describe the file they are written in, never the files extending it.
OWN_KEYS = (TEMPLATE, "name", "version", "approval")
# Decimal places of Gy at which a dose per fraction is compared with `limits_for_dose_per_fraction` (0.001 Gy).
PER_FRACTION_PRECISION = 3


@dataclass
class ReadProtocol:
    """The merged node tree of a protocol and everything learned while reading it."""

    node: Node | None
    files: list[str] = field(default_factory=list)
    sha256: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    replacements: list[GoalReplacement] = field(default_factory=list)
    extends_at: Position | None = None  # the main file's `extends:` value: where a template's misfit is said
    # Where each goal was written, with its path in the file that wrote it (`goals.Rectum[0]`): in the merged
    # list it may stand at another index (after the template's goals of its structure), which a tool resolving
    # the path in the file named would take for another goal.
    goal_paths: dict[Position, DataPath] = field(default_factory=dict)
    # Each template read, by its name as messages give it, with its own reading (the tree `read_protocol_tree` gives
    # of that file), the nearest first: each is also validated on its own, since what the merge drops of it (a goal
    # the protocol replaces) is never validated in the merged tree; kept from this reading, not read from disk again.
    templates: list[tuple[str, ReadProtocol]] = field(default_factory=list)
    # Each file's `version:` as written (None: it states none), by its name as messages give it (`ProtocolSource`).
    versions: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class GoalReplacement:
    """A base's goal and the including file's goals of its structure and key (metric, side, dose) that
    replaced it, as nodes (each knows its file and line); listed in merge order, the deepest template's first."""

    structure: str
    key: tuple[str, bool, str, str]
    replaced: Node
    by: tuple[Node, ...]


def read_protocol_tree(path: Path, display: str, root: Path) -> ReadProtocol:
    """`path` (named `display` in messages) merged with the templates it extends, which lie under `root`."""
    return _Reader(root.resolve()).read(path.resolve(), display, chain=[])


class _Reader:
    """Reads one file and, through a reader of its own, the template it extends: the template's reading is then its
    own tree (`ReadProtocol.templates`), as `read_protocol_tree` of that file gives it, and part of this one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[str] = []
        self.contents: list[bytes] = []  # each file's bytes in reading order: the SHA-256 of this file's chain
        self.diagnostics: list[Diagnostic] = []
        self.replacements: list[GoalReplacement] = []
        self.extends_at: Position | None = None
        self.goal_paths: dict[Position, DataPath] = {}
        self.templates: list[tuple[str, ReadProtocol]] = []
        self.versions: dict[str, str | None] = {}

    def read(self, real: Path, display: str, chain: list[Path]) -> ReadProtocol:
        """The tree of `real` merged with its templates; `chain`: the files extending it, for finding cycles."""
        node = self._node(real, display, chain)
        digest = hashlib.sha256()
        for data in self.contents:
            digest.update(data)
        return ReadProtocol(
            node, self.files, digest.hexdigest(), self.diagnostics, self.replacements, self.extends_at,
            self.goal_paths, self.templates, self.versions,
        )

    def _node(self, real: Path, display: str, chain: list[Path]) -> Node | None:
        try:
            data = real.read_bytes()
        except OSError as error:
            self.diagnostics.append(Diagnostic(display, None, None, "", f"cannot read file: {error.strerror}"))
            return None
        self.files.append(display)
        self.contents.append(data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            self.diagnostics.append(Diagnostic(display, line, None, "", "the file is not UTF-8 text"))
            return None
        node, diagnostics = compose(text, display)
        self.diagnostics.extend(diagnostics)
        if node is None:
            return None
        if not isinstance(node, MappingNode):
            mark = position_of(node.start_mark)
            self.diagnostics.append(
                Diagnostic(display, mark.line, mark.column, "", "a protocol is a mapping of keys (specc:, name:, ...)")
            )
            return None
        self.goal_paths.update(written_goal_paths(node))
        version = value_of(node, "version")
        self.versions[display] = version.value if isinstance(version, ScalarNode) else None
        own, extends = _split_key(node, EXTENDS)
        if extends is None:
            return own
        self.extends_at = position_of(extends.start_mark)
        base_path = self._template_path(real, display, extends, chain)
        if base_path is None:
            return None
        base_display = os.path.normpath(os.path.join(os.path.dirname(display), extends.value))
        base = self._read_template(base_path, base_display, [*chain, real])
        if base is None:
            return None
        self._check_kept_goals(own, base, display)
        return merge(_without_keys(base, OWN_KEYS), own, replacements=self.replacements)

    def _read_template(self, real: Path, display: str, chain: list[Path]) -> Node | None:
        """The node of the template `real`, read by a reader of its own whose reading this one takes in and keeps."""
        reader = _Reader(self.root)
        tree = reader.read(real, display, chain)
        self.files += tree.files
        self.contents += reader.contents
        self.diagnostics += tree.diagnostics
        self.replacements += tree.replacements
        self.goal_paths.update(tree.goal_paths)
        self.templates += [(display, tree), *tree.templates]
        self.versions.update(tree.versions)
        return tree.node

    def _check_kept_goals(self, own: Node, base: Node, display: str) -> None:
        """Refuse `Structure: []` under `goals` where the base has goals for the structure: goals are merged,
        so the empty list would keep them all while reading as "no goals" (every other list is replaced)."""
        inherited = value_of(base, "goals")
        written = value_of(own, "goals")
        if not isinstance(written, MappingNode) or not isinstance(inherited, MappingNode):
            return
        for key, value in written.value:
            kept = value_of(inherited, key.value)
            if not isinstance(value, SequenceNode) or value.value or kept is None:
                continue
            if isinstance(kept, SequenceNode):
                if not kept.value:  # the template's own list is empty: nothing is kept
                    continue
                kept = kept.value[0]
            where = position_of(kept.start_mark)
            mark = position_of(value.start_mark)
            self.diagnostics.append(Diagnostic(
                display, mark.line, mark.column, f"goals.{key.value}",
                f"an empty list would keep the template's goals of {key.value} ({where.file}:{where.line}): a "
                "protocol's goals are merged with its template's, not replaced. To change a template goal, write "
                "goals of its metric and side (they replace the template's of that metric and side); a template "
                "goal cannot be removed, so a protocol that needs none of them does not extend the template",
            ))

    def _template_path(self, real: Path, display: str, extends: Node, chain: list[Path]) -> Path | None:
        mark = position_of(extends.start_mark)

        def problem(message: str) -> None:
            self.diagnostics.append(Diagnostic(display, mark.line, mark.column, EXTENDS, message))

        if not isinstance(extends, ScalarNode) or extends.tag != "tag:yaml.org,2002:str" or not extends.value:
            problem("extends names one template file, e.g. extends: base-pelvis.yaml")
            return None
        written = extends.value
        if os.path.isabs(written):
            problem(f'template path "{written}" must be relative to this file')
            return None
        candidate = (real.parent / written).resolve()
        if not candidate.is_relative_to(self.root):
            problem(f'template "{written}" leaves the protocol tree ({self.root})')
            return None
        if candidate in chain or candidate == real:
            names = [p.name for p in [*chain, real, candidate]]
            problem(f"template cycle: {' -> '.join(names[names.index(candidate.name):])}")
            return None
        if not candidate.is_file():
            problem(f'template file "{written}" not found (looked for {candidate})')
            return None
        return candidate


def written_goal_paths(document: Node) -> dict[Position, DataPath]:
    """Where each goal of one file's node tree is written, with its path in that file: `("goals", "Rectum", 0)`,
    or `("goals", "SpinalCord")` for a structure's one goal written without a list."""
    goals = value_of(document, "goals")
    if not isinstance(goals, MappingNode):
        return {}
    paths: dict[Position, DataPath] = {}
    for key, value in goals.value:
        if isinstance(value, SequenceNode):
            for index, goal in enumerate(value.value):
                paths.setdefault(position_of(goal.start_mark), ("goals", key.value, index))
        else:
            paths.setdefault(position_of(value.start_mark), ("goals", key.value))
    return paths


def value_of(node: Node, name: str) -> Node | None:
    """The value of key `name` in a mapping `node` (None if absent or not a mapping)."""
    if not isinstance(node, MappingNode):
        return None
    return next((value for key, value in node.value if key.value == name), None)


def _without_keys(node: Node, names: tuple[str, ...]) -> Node:
    """A mapping `node` without the keys `names`."""
    if not isinstance(node, MappingNode):
        return node
    rest = [(key, value) for key, value in node.value if key.value not in names]
    return MappingNode(node.tag, rest, node.start_mark, node.end_mark)


def _split_key(node: Node, name: str) -> tuple[Node, Node | None]:
    """A mapping `node` without its key `name`, and that key's value (None if absent)."""
    value = value_of(node, name)
    return (node, None) if value is None else (_without_keys(node, (name,)), value)


def merge(
    base: Node, override: Node, path: tuple[str, ...] = (), replacements: list[GoalReplacement] | None = None
) -> Node:
    """`override` laid over `base` by the module's rules; each base goal replaced is added to `replacements`."""
    if len(path) == 2 and path[0] == "goals":
        return _merge_goal_lists(_as_list(base), _as_list(override), path[1], replacements)
    if not (isinstance(base, MappingNode) and isinstance(override, MappingNode)):
        return override
    merged = list(base.value)
    position = {key.value: index for index, (key, _) in enumerate(merged)}
    for key, value in override.value:
        if key.value in position:
            index = position[key.value]
            merged[index] = (key, merge(merged[index][1], value, (*path, key.value), replacements))
        else:
            position[key.value] = len(merged)
            merged.append((key, value))
    return MappingNode(override.tag, merged, override.start_mark, override.end_mark)


def _as_list(goals: Node) -> SequenceNode:
    """A structure's goals as a list: one goal written without a list (`SpinalCord: "Max <= 48 Gy"`) is a list of
    one, so that it replaces the base's goals of its key only, not every goal of the structure."""
    if isinstance(goals, SequenceNode):
        return goals
    return SequenceNode("tag:yaml.org,2002:seq", [goals], goals.start_mark, goals.end_mark)


def _merge_goal_lists(
    base: SequenceNode, override: SequenceNode, structure: str, replacements: list[GoalReplacement] | None
) -> SequenceNode:
    """The base's goals with each key the override writes replaced by the override's goals of that key.

    Replaced as a group, never goal by goal: matched one to one, a file's second goal of a key
    ("Max <= 35 Gy (priority 2)" beside "Max <= 45 Gy") replaced its first, and a base's pair of one
    key lost one goal to an override of one; either way a limit vanished without a word.
    """
    keys = [_goal_key(goal) for goal in override.value]
    merged: list[Node] = []
    placed: set[tuple[str, bool, str, str]] = set()
    for old in base.value:
        key = _goal_key(old)
        if key is None or key not in keys:
            merged.append(old)
            continue
        replacing = tuple(goal for goal, own in zip(override.value, keys) if own == key)
        if key not in placed:
            placed.add(key)
            merged += replacing
        if replacements is not None:
            replacements.append(GoalReplacement(structure, key, old, replacing))
    merged += [goal for goal, key in zip(override.value, keys) if key is None or key not in placed]
    return SequenceNode(override.tag, merged, override.start_mark, override.end_mark)


_IDENTITY_KEYS = frozenset({"metric", *COMPARATORS, "quantity", "course"})


def _goal_key(node: Node) -> tuple[str, bool, str, str] | None:
    """(metric, is lower bound, dose quantity, course) of a goal node: a template's "Max <= 45 Gy" and a
    protocol's "Max <= 50 Gy (EQD2)" (or "Max <= 20 Gy (this course)") are two goals. Read by the goal
    grammar itself, on the values YAML gives (`5_0` is 50); a goal it cannot read (validation reports it)
    is matched by its metric and side as written, as a physical goal on the composite; None when not
    even those can be read."""
    if isinstance(node, ScalarNode):
        written: Any = node.value
    elif isinstance(node, MappingNode) and all(isinstance(key, ScalarNode) for key, _ in node.value):
        constructor = SafeConstructor()
        written = {key.value: constructor.construct_object(value, deep=True) for key, value in node.value
                   if key.value in _IDENTITY_KEYS}  # a priority's or variation's value does not identify it
    else:
        return None
    try:
        fields = parse_compact(written) if isinstance(written, str) else fields_from_mapping(
            GoalMapping.model_validate(written)
        )
    except (ValueError, ValidationError):
        return _written_key(written)
    return (str(fields["metric"]), fields["comparator"] in LOWER_BOUNDS, fields.get("quantity", "physical"),
            fields.get("course", "composite"))


_COMPACT_HEAD = re.compile(r"^\s*(?P<metric>[^\s<>=]+)\s*(?P<cmp><=|>=|<|>)")


def _written_key(written: Any) -> tuple[str, bool, str, str] | None:
    """The metric and side of a goal the grammar cannot read, as written."""
    if isinstance(written, str):
        match = _COMPACT_HEAD.match(written)
        metric, comparator = (match["metric"], match["cmp"]) if match else (None, None)
    else:
        metric = written.get("metric")
        comparator = next((c for c in COMPARATORS if written.get(c) is not None), None)
    if not isinstance(metric, str) or comparator is None:
        return None
    try:
        return str(Metric.parse(metric)), comparator in LOWER_BOUNDS, "physical", "composite"
    except ValueError:
        return None


# The dose "% of prescription" means for a structure's goal on a course; None where no prescription says (a template).
Reference = Callable[[str, Course], Dose | None]


def loosened_goals(
    replacements: list[GoalReplacement], goal_paths: dict[Position, DataPath], reference: Reference
) -> list[LoosenedGoal]:
    """Each template goal replaced by goals that ask less, at the replacing goal's line, naming the template's.

    Allowed by the merge rule (a file's goals of a metric and side are its goals for them), but a site
    template is where a clinic keeps its must-limits: a protocol turning the cord's "D0.03cc <= 45 Gy" into
    "D0.03cc <= 50 Gy (priority 2)" validated and planned without a word, seen only by `specc diff`. A
    replaced goal is compared with the goals its key has once every file is merged (a template between
    may have replaced it first); it is loosened when none of them is at least as strict in threshold,
    priority and acceptable variation. A replaced goal the grammar cannot read is left out: the template
    it is written in reports it when validated itself. `goal_paths`: each goal's path in the file that wrote it
    (`ReadProtocol.goal_paths`), the path the warning names."""
    final = {(r.structure, r.key): r.by for r in replacements}  # in merge order: the last replacement stands
    found: list[LoosenedGoal] = []
    for replacement in replacements:
        old = _goal_of(replacement.replaced, replacement.structure, reference)
        news = [(node, _goal_of(node, replacement.structure, reference))
                for node in final[(replacement.structure, replacement.key)]]
        if old is None or any(goal is None for _, goal in news):
            continue
        # the replacing goal that gives up least: none gives up anything when one is at least as strict
        node, new, reasons = min(((node, goal, asks_less(old, goal)) for node, goal in news if goal is not None),
                                 key=lambda found: len(found[2]))
        if not reasons:
            continue
        was, mark = position_of(replacement.replaced.start_mark), position_of(node.start_mark)
        path = format_loc(goal_paths.get(mark, ("goals", replacement.structure)))
        place = Diagnostic(mark.file, mark.line, mark.column, path, "")
        found.append(LoosenedGoal(_loosened_warning(place, old, f"{was.file}:{was.line}", new.text, reasons),
                                  old, f"{was.file}:{was.line}"))
    return found


@dataclass(frozen=True)
class LoosenedGoal:
    """A goal that asks less than the template goal it replaces: the warning, and that template goal, so that the
    goal changed in memory (`specc.revise_protocol`) is judged against it again, not dropped or kept unseen."""

    warning: Diagnostic
    template_goal: Goal
    template_place: str  # "FILE:LINE" of the template goal

    def judged_again(self, goal: Goal) -> LoosenedGoal | None:
        """This one for `goal`, now at this goal's place, where it still asks less than the template goal; else None."""
        reasons = asks_less(self.template_goal, goal)
        if not reasons:
            return None
        return dataclasses.replace(
            self, warning=_loosened_warning(self.warning, self.template_goal, self.template_place, str(goal), reasons))


def _loosened_warning(place: Diagnostic, old: Goal, template_place: str, new_text: str, reasons: list[str]) -> Diagnostic:
    return dataclasses.replace(
        place, message=f'"{new_text}" replaces the template goal "{old.text}" ({template_place}) and asks less: '
        + ", ".join(reasons))


def _goal_of(node: Node, structure: str, reference: Reference) -> Goal | None:
    """The goal a node writes, its % of prescription resolved where `reference` knows the dose; None if unreadable."""
    try:
        written = SafeConstructor().construct_object(node, deep=True)
        goal = Goal.model_validate(GoalEntry(structure, written))
    except (ValueError, ValidationError, YAMLError):
        return None
    if not goal.needs_reference:
        return goal
    return goal.model_copy(update={"reference_dose": reference(structure, goal.course)})


def asks_less(old: Goal, new: Goal) -> list[str]:
    """How `new` (of `old`'s structure, metric, side and dose) is looser than `old`: empty when it is not.

    A limit read from a table by a structure's volume is compared row by row (between two rows it is the straight
    line between them, so a table asks less somewhere only where it does at a row): asking less at any row asks less
    of the cases of that volume, and the reason names the rows, or says every row."""
    upper = not old.is_lower_bound
    points = table_points(old, new)
    readings = [(point, read_at(old, point), read_at(new, point)) for point in points]
    reasons: list[str] = []
    raised = _looser(readings, "limit", upper)
    if raised:
        reasons.append(f"threshold {'raised' if upper else 'lowered'} from {_written(old, 'limit', raised[0][3][0])} to "
                       f"{_written(new, 'limit', raised[0][3][1])}{_where(points, raised, 'limit')}")
    if new.priority > old.priority:
        must = " (must)" if old.priority == DEFAULT_PRIORITY else ""
        reasons.append(f"priority demoted from {old.priority}{must} to {new.priority}")
    if any(now.variation is not None and was.variation is None for _, was, now in readings):
        reasons.append(f"an acceptable variation added ({_written(new, 'variation', None)})")
    widened = _looser(readings, "variation", upper)
    if widened:
        reasons.append(f"acceptable variation widened from {_written(old, 'variation', widened[0][3][0])} "
                       f"to {_written(new, 'variation', widened[0][3][1])}{_where(points, widened, 'variation')}")
    return reasons


# Where a goal asks less: the volumes read at, both goals read there, and the two limits compared on one scale.
_Looser = list[tuple[dict[str, float], Goal, Goal, tuple[float, float]]]


def _looser(readings: list[tuple[dict[str, float], Goal, Goal]], which: str, upper: bool) -> _Looser:
    """The readings where the new goal's limit or variation (`which`) is looser than the old one's, both stated."""
    found: _Looser = []
    for point, was, now in readings:
        old_limit, new_limit = _limit(was, which), _limit(now, which)
        if old_limit is None or new_limit is None:
            continue
        pair = _comparable(was, old_limit, now, new_limit)
        if pair is not None and (pair[1] > pair[0] if upper else pair[1] < pair[0]):
            found.append((point, was, now, pair))
    return found


def _limit(goal: Goal, which: str) -> Threshold | None:
    return goal.threshold if which == "limit" else goal.variation


def _written(goal: Goal, which: str, compared: float | None) -> str:
    """`goal`'s limit or variation as written: a table's column as its span by volume ("60-70 Gy by PTV volume"); a
    number with its dose where it was compared in Gy (`compared`) against one in another form ("50% (27 Gy)")."""
    unit, table = goal.metric.unit, goal.by_volume
    if table is not None:
        column = table.limits if which == "limit" else table.variations
        assert column is not None, "`asks_less`: a variation is written only where the goal has one"
        return f"{span_text(column, table.relative, unit)} by {table.structure} volume"
    limit = _limit(goal, which)
    assert limit is not None, "`asks_less`: a goal without a table has a threshold, and a variation where written"
    return limit.text(unit) if compared is None else _text(limit, unit, compared)


def _where(points: list[dict[str, float]], found: _Looser, which: str) -> str:
    """At which table rows a goal asks less: nothing without a table, "at every row of the table", or each row with
    the two limits read there ("at the table's 22 cc row (45 Gy to 50 Gy) and 163 cc row (45 Gy to 60 Gy)")."""
    if points == [{}]:
        return ""
    if len(found) == len(points):
        return " at every row of the table"
    rows = []
    for point, was, now, pair in found:
        read = tuple(_limit(goal, which) for goal in (was, now))
        assert read[0] is not None and read[1] is not None, "`asks_less` compared these two"
        values = " to ".join(_reading(limit, was.metric.unit, value, pair) for limit, value in zip(read, pair))
        if len(point) == 1:
            rows.append(f"{format_number(next(iter(point.values())))} cc row ({values})")
        else:
            rows.append(" with ".join(f"{name} {format_number(volume)} cc" for name, volume in point.items())
                        + f" ({values})")
    return f" at the table's {' and '.join(rows)}" if len(points[0]) == 1 else f" at the table rows {'; '.join(rows)}"


def _reading(limit: Threshold, unit: str, value: float, pair: tuple[float, float]) -> str:
    """A limit read at a row, on the scale it was compared on (as written, or in Gy where the other was in another
    form), interpolated values to two decimals, or more where fewer would show the two limits equal."""
    shown = round(value, places_apart(value, pair))
    if value == limit.value:
        return Threshold(value=shown, relative=limit.relative).text(unit)  # type: ignore[arg-type]
    return f"{format_number(shown)} Gy"


def _comparable(old: Goal, before: Threshold, new: Goal, after: Threshold) -> tuple[float, float] | None:
    """Two limits on one scale: as written when both are in one form (a % of one prescription, both goals'
    key being one structure and course), else resolved to Gy; None where a prescription is missing."""
    if before.relative == after.relative:
        return before.value, after.value
    try:
        return before.resolve(old.reference_dose), after.resolve(new.reference_dose)
    except ValueError:
        return None


def _text(limit: Threshold, unit: str, value: float) -> str:
    """A limit as written, with its dose where it was compared in Gy against one in another form."""
    written = limit.text(unit)
    return f"{written} ({format_number(value)} Gy)" if limit.relative and value != limit.value else written


def fractionation_misfit(
    limits: Sequence[Dose] | None, prescription: Prescription | None, *, extends: bool
) -> str | None:
    """Why the physical dose limits of a template stating `limits_for_dose_per_fraction` (`limits`: the lowest and
    highest Gy per fraction they are for) do not fit `prescription`, or None: its dose per fraction (the highest
    level's this plan gives, over its fractions) lies outside them. A site template's organ limits are physical
    doses set for one fractionation (QUANTEC's for about 2 Gy fractions): inherited by a 5-fraction protocol, a
    cord limit of 45 Gy allows 123.75 Gy EQD2 (alpha/beta 2 Gy: 45 Gy x (9 + 2) / (2 + 2)) where it was set for 45,
    and nothing but the template's comments said so. A warning, not an error: a clinic may apply them knowingly.
    `extends`: whether the protocol takes goals from a template (the advice to write the limits without
    `extends:` and that a template goal stays is for such a protocol only).
    Compared at `PER_FRACTION_PRECISION`, the precision the message shows: in binary floating point 64.8 Gy / 36 is
    1.7999999999999998, and a 1.8 Gy course was warned as outside 1.8-2.2 Gy."""
    if limits is None or prescription is None:
        return None
    low, high = (round(dose.gy, PER_FRACTION_PRECISION) for dose in limits)
    highest = max(prescription.levels, key=lambda level: level.dose.gy)
    per_fraction = round(highest.dose_per_fraction_gy, PER_FRACTION_PRECISION)
    if low <= per_fraction <= high:
        return None
    course = course_text(prescription.fractions)
    told = (
        f"{highest.target}'s {format_number(highest.plan_dose_gy)} Gy in {course} is "
        f"{format_number(per_fraction)} Gy per fraction, but the physical dose limits {'taken ' if extends else ''}"
        f"are for {format_number(low)}-{format_number(high)} Gy per fraction ({LIMITS_FOR_DOSE_PER_FRACTION}): "
    )
    in_isoeffect = 'in EQD2 or BED with the organ\'s alpha_beta ("Max <= 45 Gy (EQD2)" converts from this fractionation'
    if per_fraction > high:
        return told + (
            f"at {format_number(per_fraction)} Gy per fraction the same physical dose does more to an organ, so "
            f"they limit less than they were set to. State the limits this course needs in this protocol, {in_isoeffect}"
            + ("; it is kept beside the template's physical goal), or write this course's limits without `extends:`"
               if extends else ")")
        )
    return told + f"at {format_number(per_fraction)} Gy per fraction they limit more than they were set to" + (
        ", and a template goal cannot be removed: write this course's limits without `extends:`" if extends else
        f": state the limits this course needs, {in_isoeffect}) or in physical dose for this fractionation"
    )
