"""Plans side by side: the same goals measured in each, and their DVHs on one figure.

Physicists compare plans all the time: a margin plan against a robust one, one protocol
version against the next, a re-plan against the approved plan. Each plan is read from the
plan.json that `specc plan` wrote (the record its report and signature stand on), never
recomputed, so the comparison shows exactly what each report showed. Goals are matched as
`specc diff` matches them (structure, metric, side and dose: a goal whose threshold or priority a
revision tuned is the same goal, shown with each version's text and the difference of its values);
a goal that one plan lacks, or one whose pairing would be a guess, shows as absent, never as a
value. What would make a comparison misleading is said before any number: plans of different
cases (or of one case id holding different case data: a matRad check filed under its workspace),
plans measured on different grids or structure masks (a matRad check on its CT grid beside specc's
plan on the case's dose grid: the difference may be the measurement's, not the plans'), prescriptions,
protocols of one name and version but different content (one changed without a new version, as the cohort
comparison and `specc diff` say: judged by the content fingerprint, so that a comment edit is said as one), and a
plan whose solver did not converge.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from pydantic import ValidationError

from specc.case.model import grid_text
from specc.errors import SpeccError, validation_text
from specc.evaluate import PlanRecord
from specc.evaluate.record import (
    RECORD_FORMAT, STRUCTURES, STRUCTURES_SHA256, GoalRecord, GridInfo, ProtocolInfo, RobustGoalRecord,
)
from specc.protocol.diff import PairedGoals, pair_goals
from specc.protocol.models import SAME_CONTENT
from specc.report.figures import to_data_uri
from specc.report.html import STATUS_LABELS, environment, style_sheet
from specc.report.identity import PLAN_JSON
from specc.report.limits import resolved_limits
from specc.report.write import write_page

COMPARE_PAGE = "compare"  # compare.html, compare.pdf

# One line style per plan on the DVH figure (structures keep their colours); beyond four, they repeat.
LINE_STYLES = ("-", "--", ":", "-.")


class CompareError(SpeccError):
    """Plans that cannot be compared as asked (a missing or unreadable plan.json, one plan only)."""


@dataclass(frozen=True)
class Notice:
    """A line said before any number (a comparison's, an approval's), with its severity: `warning` where it may make
    the numbers misleading or asks the reader to check something; a note where it only says what is so (protocol
    files that keep their content: `FORMATTING_ONLY`). The command line and the pages show it by `warning`
    ("warning:" or "note:", the warnings' banner or the notes'), never by its words: not a str, so that no caller
    takes its words for the whole of it."""

    text: str
    warning: bool = True


@dataclass(frozen=True)
class ComparedPlan:
    label: str
    source: Path  # the plan.json read
    record: PlanRecord
    sha256: str  # of the plan.json read, as its report's pages and `specc approve` name the plan


@dataclass(frozen=True)
class Measured:
    """One plan's value of a goal, as its report gave it (`shown`: with the decimals its judgement needs), and
    `limit`, for a goal whose limit is read on each case from a table by a structure's volume, the limit it was
    judged by and where it was read ("27.93 Gy, variation 32.49 Gy, from the table by PTV volume at 17.00 cc,
    between the 13.2 and 22 cc rows"): two cases' values of such a goal are judged against different limits."""

    value: float | None
    status: str
    shown: str
    limit: str | None = None


@dataclass(frozen=True)
class GoalRow:
    """A goal across the plans; `scope` "worst" is its worst setup-error scenario (robustness check)."""

    structure: str
    texts: list[str | None]  # per plan, the goal as its protocol wrote it; None: that plan has no such goal
    unit: str
    scope: Literal["nominal", "worst"]
    measured: list[Measured | None]  # per plan; None: that plan has no such goal

    @property
    def limits_differ(self) -> bool:
        """Whether the plans were judged against different limits of this goal (one read from a table by a
        structure's volume on each plan's case): each plan's limit is then shown beside its value."""
        return len({m.limit for m in self.measured if m is not None}) > 1

    @property
    def text(self) -> str:
        """The goal as written, or where a plan's protocol changed it (its threshold, variation or priority),
        each version in plan order: "D95% >= 50 Gy → D95% >= 51.5 Gy"."""
        return " → ".join(dict.fromkeys(text for text in self.texts if text is not None))

    def difference(self) -> float | None:
        """Second plan minus first, with exactly two plans that both measured it; else None."""
        if len(self.measured) != 2 or any(m is None or m.value is None for m in self.measured):
            return None
        first, second = self.measured
        return second.value - first.value  # type: ignore[union-attr,operator]


def read_plans(paths: Sequence[Path], labels: Sequence[str] = ()) -> list[ComparedPlan]:
    """The plans at `paths` (folders `specc plan` wrote, or their plan.json), labelled."""
    if len(paths) < 2:
        raise CompareError("give at least two plans to compare (folders written by `specc plan`, or their plan.json)")
    if labels and len(labels) != len(paths):
        raise CompareError(f"{len(labels)} labels for {len(paths)} plans: give one --label per plan, or none")
    plans = []
    for index, path in enumerate(paths):
        plan_file = path / PLAN_JSON if path.is_dir() else path
        record, sha256 = read_plan_file(plan_file)
        label = labels[index] if labels else (plan_file.parent.name or str(plan_file))
        plans.append(ComparedPlan(label, plan_file, record, sha256))
    return numbered(plans)


def numbered(items: list) -> list:
    """Items (plans, cohorts) whose labels repeat (folders of the same name elsewhere) numbered in order:
    "out (1)", "out (2)"."""
    counts = Counter(item.label for item in items)
    seen: Counter = Counter()
    out = []
    for item in items:
        if counts[item.label] > 1:
            seen[item.label] += 1
            item = dataclasses.replace(item, label=f"{item.label} ({seen[item.label]})")
        out.append(item)
    return out


def read_record(plan_file: Path) -> PlanRecord:
    """A plan.json as `specc plan` wrote it; errors name the file and the field."""
    return read_plan_file(plan_file)[0]


def read_plan_file(plan_file: Path) -> tuple[PlanRecord, str]:
    """A plan.json as `specc plan` wrote it, and the SHA-256 of its bytes: the plan's identity, which its report
    prints (the first digits at the top of every page) and `specc approve` binds. Of the bytes read, not of the record
    written out again, which a later specc's added fields would change. Errors name the file and the field."""
    try:
        data = plan_file.read_bytes()
    except FileNotFoundError:
        raise CompareError(
            f"{plan_file}: no such file (give a folder written by `specc plan` or `specc check`, or its plan.json)"
        ) from None
    except OSError as error:
        raise CompareError(f"{plan_file}: cannot be read ({error.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CompareError(f"{plan_file}: not a specc plan record (not UTF-8 text at byte {error.start})") from None
    try:
        record = PlanRecord.model_validate_json(text)
    except ValidationError as error:
        raise CompareError(f"{plan_file}: not a specc plan record ({validation_text(error, 'the file')})") from None
    if record.format != RECORD_FORMAT:
        raise CompareError(f"{plan_file}: plan record format {record.format}; this specc reads format {RECORD_FORMAT}")
    return record, hashlib.sha256(data).hexdigest()


def pair_recorded_goals(before: Sequence[GoalRecord], after: Sequence[GoalRecord]) -> list[PairedGoals[GoalRecord]]:
    """Two plans' goals paired as `specc diff` pairs a protocol's (`pair_goals`): by structure, metric, side and
    dose, so that a goal whose threshold or priority was tuned is the same goal changed, not one removed and
    one added. Written alike: the same comparator, limits (as resolved, in the goal's unit) and priority."""
    return pair_goals(before, after, lambda goal: (goal.comparator, goal.threshold, goal.variation, goal.priority))


def recorded_goals(record: PlanRecord) -> list[tuple[tuple[str, str, str], str, Measured]]:
    """A plan's goals as (structure, text, scope), unit and value: every goal, then each robust goal's
    worst setup-error scenario (scope "worst")."""
    out = [((goal.structure, goal.text, "nominal"), goal.unit, _measured(goal, goal.value, goal.status))
           for goal in record.goals]
    robust = record.robustness.goals if record.robustness is not None else []
    out += [((goal.structure, goal.text, "worst"), goal.unit,
             _measured(record.goal_named(goal.structure, goal.text), goal.worst, goal.status)) for goal in robust]
    return out


def _measured(goal: GoalRecord, value: float | None, status: str) -> Measured:
    limit = resolved_limits(goal) if goal.limit_source is not None else None
    return Measured(value, status, "" if value is None else goal.shown(value), limit)


def goal_rows(plans: Sequence[ComparedPlan]) -> list[GoalRow]:
    """Every goal of any plan, paired across the plans as `specc diff` pairs a protocol's goals
    (`pair_recorded_goals`): a goal whose threshold or priority one plan's protocol changed is one row, with
    each version's text and the difference of its values; a pairing that would be a guess stays two rows. In the
    order first met; then each robust goal's worst scenario, in the order of its goal's row."""
    rows = _paired([plan.record.goals for plan in plans])
    worst = [_worst_by_goal(plan.record) for plan in plans]
    out = []
    for goals in rows:
        first = next(goal for goal in goals if goal is not None)
        texts = [goal.text if goal is not None else None for goal in goals]
        measured = [_measured(goal, goal.value, goal.status) if goal is not None else None for goal in goals]
        out.append(GoalRow(first.structure, texts, first.unit, "nominal", measured))
    for goals in rows:
        robust = [worst[index].get(id(goal)) if goal is not None else None for index, goal in enumerate(goals)]
        if any(scenario is not None for scenario in robust):
            first = next(goal for goal in goals if goal is not None)
            texts = [goal.text if scenario is not None else None for goal, scenario in zip(goals, robust)]
            measured = [_measured(goal, scenario.worst, scenario.status) if goal is not None and scenario is not None
                        else None for goal, scenario in zip(goals, robust)]
            out.append(GoalRow(first.structure, texts, first.unit, "worst", measured))
    return out


def _paired(plans_goals: Sequence[Sequence[GoalRecord]]) -> list[list[GoalRecord | None]]:
    """Rows of goals, one column per plan: each plan's goals paired with the latest version of every row so far."""
    rows: list[list[GoalRecord | None]] = []
    for index, goals in enumerate(plans_goals):
        latest = [next(goal for goal in reversed(row) if goal is not None) for row in rows]
        row_of = {id(goal): row for goal, row in zip(latest, rows)}
        added: set[int] = set()
        for paired in pair_recorded_goals(latest, goals):
            for was, now in paired.pairs:
                row_of[id(was)][index] = now
            added.update(id(goal) for goal in paired.added)
        for goal in goals:  # in the plan's own order
            if id(goal) in added:
                rows.append([goal if column == index else None for column in range(len(plans_goals))])
    return rows


def _worst_by_goal(record: PlanRecord) -> dict[int, RobustGoalRecord]:
    """A plan's robust goals (worst setup-error scenario) by the identity of their nominal goal record."""
    robust = record.robustness.goals if record.robustness is not None else []
    return {id(record.goal_named(goal.structure, goal.text)): goal for goal in robust}


def warnings(plans: Sequence[ComparedPlan]) -> list[Notice]:
    """What the reader must know before comparing numbers, each plan's own warnings first (`PlanRecord.warnings`: a
    prior dose unlike the declared, a loosened template goal, a target whose margin the grid lost); each a warning
    but protocol files that keep their content, a note (`Notice.warning`)."""
    out = [Notice(f"{plan.label}: {warning}") for plan in plans for warning in plan.record.warnings]
    out += [Notice(warning) for warning in (*_case_warnings(plans), *measurement_warnings(plans))]
    out += _unversioned_changes(plans)
    prescriptions = {
        (plan.record.prescription.fractions,
         tuple(sorted((l.target, l.total_gy) for l in plan.record.prescription.levels)))  # a level by its target
        for plan in plans
    }
    if len(prescriptions) > 1:
        listed = "; ".join(
            f"{plan.label}: " + ", ".join(f"{l.target} {l.total_gy:g} Gy" for l in plan.record.prescription.levels)
            + f" in {plan.record.prescription.fractions}"
            for plan in plans
        )
        out.append(Notice(f"the prescriptions differ ({listed}): a goal in % of prescription refers to each plan's "
                          "own"))
    composites = [plan.label for plan in plans if plan.record.prior_dose is not None]
    if composites and len(composites) < len(plans):
        out.append(Notice(
            f"{', '.join(composites)}: a composite (a prior course's dose plus the plan), the others are not: "
            "their values are of different things"
        ))
    ratios: dict[tuple[str, str], set[float]] = {}
    for plan in plans:
        for goal in plan.record.goals:
            if goal.alpha_beta_gy is not None:
                ratios.setdefault((goal.structure, goal.text), set()).add(goal.alpha_beta_gy)
    for (structure, text), values in ratios.items():
        if len(values) > 1:
            out.append(Notice(
                f"{structure} {text}: converted with alpha/beta {', '.join(f'{v:g}' for v in sorted(values))} Gy in "
                "different plans: its values differ by the model, not only by the dose"
            ))
    for plan in plans:
        if not plan.record.converged:
            out.append(Notice(f"{plan.label}: {plan.record.why_not_converged()}; not a usable plan, its goals read "
                              "NOT CONVERGED"))
    return out


def _case_warnings(plans: Sequence[ComparedPlan]) -> list[str]:
    """Plans of different cases; where they share a case id, what differs (a matRad check filed under its
    workspace's CT structures, not the case file, beside a plan of the case imported from that workspace)."""
    if len({(plan.record.case.case_id, plan.record.case.sha256) for plan in plans}) <= 1:
        return []
    ids = {plan.record.case.case_id for plan in plans}
    if len(ids) > 1:
        listed = "; ".join(f"{plan.label}: {plan.record.case.case_id} ({plan.record.case.sha256[:12]})" for plan in plans)
        return [f"the plans are of different cases ({listed}): each value is measured on its own case"]
    listed = "; ".join(f"{plan.label}: {_case_data(plan.record)}" for plan in plans)
    text = f"the plans name the same case {ids.pop()!r} but hold different case data ({listed})"
    unfiled = [plan.label for plan in plans if _filed_under_workspace(plan.record)]
    if not unfiled:
        return [f"{text}: each value is measured on its own case data"]
    return [
        f"{text}: {', '.join(unfiled)} checked a matRad workspace without --case, so it is filed under the workspace's "
        "own CT structures and whether it is of the other plans' case is not on record; check it with --case CASE.h5 "
        "(the case the others were planned on), which verifies that case is of the workspace and files the check under it"
    ]


def _filed_under_workspace(record: PlanRecord) -> bool:
    """A matRad check without a case: its case block is the workspace's CT structures it measured on."""
    source = record.dose_source
    return source is not None and source.attributes.get(STRUCTURES_SHA256) == record.case.sha256


def _case_data(record: PlanRecord) -> str:
    digest = record.case.sha256[:12]
    if _filed_under_workspace(record):
        assert record.dose_source is not None
        return f"the CT grid and cst{{i,4}} structures of the matRad workspace {record.dose_source.file} ({digest})"
    return f"the case {record.case.case_id} from {record.case.source} ({digest})"


def measurement_warnings(plans: Sequence[ComparedPlan]) -> list[str]:
    """Plans measured on different grids, or with different structure masks (a matRad check on the workspace's CT
    grid with its cst{i,4} voxels beside specc's plan on the case's dose grid with the case's masks): every grid and
    mask source named, since a goal's difference may then be the measurement's rather than the plans'."""
    grids = {_grid_text(plan.record.case.grid) for plan in plans}
    masks = {_masks(plan.record) for plan in plans}
    own_masks = all(STRUCTURES not in (plan.record.dose_source.attributes if plan.record.dose_source else {})
                    for plan in plans)
    # plans of different case data have different masks, said by the case warning; their grids are said here
    masks_differ = len(masks) > 1 and not own_masks
    if len(grids) == 1 and not masks_differ:
        return []
    what = " and ".join(word for word, differ in (("grids", len(grids) > 1), ("structure masks", masks_differ)) if differ)
    listed = "; ".join(f"{plan.label}: {_measured_on(plan.record)}" for plan in plans)
    text = (f"the plans are measured on different {what} ({listed}): a goal's difference between them, and a "
            "pass beside a fail, may come from the measurement (voxel size, interpolation, masks) rather than from "
            "the plans")
    if any(plan.record.dose_source is not None and plan.record.dose_source.format == "matRad resultGUI"
           and STRUCTURES in plan.record.dose_source.attributes for plan in plans):
        text += (". To compare the plans, measure matRad's dose as specc measures its plan of the case: specc check "
                 "--case CASE.h5 --dose WORKSPACE.mat --measure-on case")
    return [text]


def _masks(record: PlanRecord) -> tuple[str, str]:
    """Where a plan's structure masks come from: the check's own (`STRUCTURES`), else its case's, by SHA-256."""
    source = record.dose_source
    if source is not None and STRUCTURES in source.attributes:
        return ("structures", source.attributes[STRUCTURES])
    return ("case", record.case.sha256)


def _measured_on(record: PlanRecord) -> str:
    """A plan's evaluation grid and masks in words, and the dose's own grid where it was interpolated."""
    kind, masks = _masks(record)
    words = f"{_grid_text(record.case.grid)}, {masks if kind == 'structures' else f'the masks of the case {record.case.case_id} ({masks[:12]})'}"
    source = record.dose_source
    if source is not None and source.interpolated:
        words += f", the dose interpolated from its own grid ({_grid_text(source.grid)})"
    return words


def _grid_text(grid: GridInfo) -> str:
    """The grid with its first voxel centre: two plans on grids of one size a shift apart are on different grids."""
    origin = ", ".join(f"{o:g}" for o in grid.origin_mm)
    return f"{grid_text(grid)}, first centre ({origin}) mm"


# How protocols of one name and version differ (`protocol_difference`): a content change, as `specc diff` would
# list it; an edit `specc diff` finds no difference in (a note: the plans are of one protocol); or, for plans
# without the content fingerprint, only bytes.
CONTENT_CHANGED = Notice("the same name and version with different content, so one was changed without a new version")
FORMATTING_ONLY = Notice(f"the protocol files differ in {SAME_CONTENT} (same content)", warning=False)
NOT_TOLD = Notice("the protocol files differ; plans written before specc recorded the content fingerprint cannot "
                  "tell a comment from a clinical change")


def protocol_difference(protocols: Iterable[ProtocolInfo]) -> Notice | None:
    """How the protocols of plans that share a name and version differ (`CONTENT_CHANGED`, `FORMATTING_ONLY`,
    `NOT_TOLD`); None where their files hold the same bytes. Judged by the content fingerprint
    (`ProtocolInfo.content_sha256`), for the bytes change with a comment, which `specc diff` rightly says needs no
    new version: two fingerprints that differ are a change without a new version; one fingerprint for all,
    comments, formatting or descriptive fields only. A plan.json written before the fingerprint was recorded
    leaves the bytes alone to go by, and they cannot tell a comment from a clinical change. The one rule: `specc
    approve` judges a plan's protocol files as they are now by it too (`approval.protocol_changed_since`)."""
    protocols = list(protocols)
    if len({protocol.sha256 for protocol in protocols}) <= 1:
        return None
    return content_difference(protocol.content_sha256 for protocol in protocols)


def content_difference(fingerprints: Iterable[str | None]) -> Notice:
    """How protocol files whose bytes differ differ by their content fingerprints (`ProtocolInfo.content_sha256`,
    None where a plan.json was written before it was recorded): two that differ, `CONTENT_CHANGED`; one for all,
    `FORMATTING_ONLY`; else `NOT_TOLD`. `protocol_difference`'s judgement, for a caller that holds the fingerprints
    rather than the plans' protocol records (`approval.protocol_changed_since`: the plan's and the files' now)."""
    contents = set(fingerprints)
    if len(contents - {None}) > 1:
        return CONTENT_CHANGED
    return NOT_TOLD if None in contents else FORMATTING_ONLY


def protocol_with_digests(protocol: ProtocolInfo) -> str:
    """A protocol as the warnings and the console name it, with its own hashes beside it: its files' bytes, then
    its content fingerprint where plan.json records one, "Site v1 v1.0.0 (SHA-256 b33aff542d26, content SHA-256
    acbe21cf22b8)". One protocol at a time: several hashes beside several names would read as pairs they are not."""
    content = f", content SHA-256 {protocol.content_sha256[:12]}" if protocol.content_sha256 is not None else ""
    return f"{protocol.name} v{protocol.version} (SHA-256 {protocol.sha256[:12]}{content})"


def _unversioned_changes(plans: Sequence[ComparedPlan]) -> list[Notice]:
    """Plans whose protocols share a name and version but not their files: a protocol changed without a new
    version, so that "v1.1.0" on both names two protocols (in the cohort comparison's words), or one whose
    comments or formatting were edited, a note (`protocol_difference`)."""
    by_version: dict[tuple[str, str], list[ComparedPlan]] = {}
    for plan in plans:
        by_version.setdefault((plan.record.protocol.name, plan.record.protocol.version), []).append(plan)
    out = []
    for same in by_version.values():
        difference = protocol_difference(plan.record.protocol for plan in same)
        if difference is None:
            continue
        listed = "; ".join(f"{plan.label}: {protocol_with_digests(plan.record.protocol)}" for plan in same)
        lead = "differ" if difference == CONTENT_CHANGED else "share a name and version"
        out.append(Notice(f"the plans' protocols {lead} ({listed}): {difference.text}", difference.warning))
    return out


def comparison_figure(plans: Sequence[ComparedPlan]) -> Figure:
    """Every plan's DVHs on one axes: a structure's colour from the first plan that has it, a line style per plan."""
    figure = Figure(figsize=(8.0, 4.6))
    axes = figure.add_subplot()
    colors: dict[str, str] = {}
    for plan in plans:
        for structure in plan.record.structures:
            colors.setdefault(structure.structure, structure.color)
    for index, plan in enumerate(plans):
        style = LINE_STYLES[index % len(LINE_STYLES)]
        for structure in plan.record.structures:
            axes.plot(structure.dose_gy, structure.volume_percent, color=colors[structure.structure], ls=style, lw=1.5)
    axes.set_xlabel("Dose (Gy, total)")
    axes.set_ylabel("Volume (%)")
    axes.set_ylim(0, 102)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    handles = [Line2D([], [], color=color, lw=2.0, label=name) for name, color in colors.items()]
    handles += [
        Line2D([], [], color="black", ls=LINE_STYLES[index % len(LINE_STYLES)],
               label=plan.label + ("" if plan.record.converged else " (NOT CONVERGED)"))
        for index, plan in enumerate(plans)
    ]
    axes.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    return figure


def protocols_compared(records: Iterable[PlanRecord]) -> str:
    """The protocols of the records, each "name vVERSION" once, in the order first met: what a comparison's document
    title and description name beside its labels, as a plan report's title names its protocol's version, and how a
    cohort names its plans' (`ComparedCohort.protocol`)."""
    return ", ".join(dict.fromkeys(f"{record.protocol.name} v{record.protocol.version}" for record in records))


def written_now() -> str:
    """When a page of several plans is written (UTC, ISO 8601 to the second), as a plan record's `created`: the
    plan comparison's, the cohort comparison's and the cohort page's pages and document information carry it (their
    frame's `written`), for two such pages of the same plans or cohort are otherwise alike page for page."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def render_comparison(plans: Sequence[ComparedPlan]) -> str:
    """The comparison page: provenance of each plan, warnings, goals side by side, DVHs overlaid. Every printed page
    names the plans with their plan ids (the first digits of each plan.json's SHA-256, as each plan report's pages
    give it) and the time of the comparison; the PDF's document information has author, creator, that time and a
    title naming the protocols with their versions."""
    css = style_sheet()
    structures = list(dict.fromkeys(s.structure for plan in plans for s in plan.record.structures))
    doses = [{s.structure: s for s in plan.record.structures} for plan in plans]
    return environment().get_template("compare.html").render(
        heading="Plan comparison",
        names=" vs ".join(plan.label for plan in plans),
        plans=plans,
        rows=goal_rows(plans),
        warnings=warnings(plans),
        structures=structures,
        doses=doses,
        dvh=to_data_uri(comparison_figure(plans)),
        not_converged=[plan.label for plan in plans if not plan.record.converged],
        css=css,
        status_labels=STATUS_LABELS,
        written=written_now(),
        protocols=protocols_compared(plan.record for plan in plans),
        cases=", ".join(dict.fromkeys(plan.record.case.case_id for plan in plans)),
    )


def write_comparison(out_dir: str | Path, plans: Sequence[ComparedPlan], pdf: bool = False) -> list[Path]:
    """Write compare.html (and compare.pdf when `pdf`) into `out_dir`; returns the paths written."""
    return write_page(out_dir, COMPARE_PAGE, render_comparison(plans), pdf)
