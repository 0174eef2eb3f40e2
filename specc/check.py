"""`specc.check`: a plan made in another planning system, judged against a protocol.

Clinics compare the plans their planning system made with their protocols, and with what
specc would make. A check reads the other system's dose (a DICOM RT Dose, or the plan a
matRad workspace holds in resultGUI) as it was exported,
measures every goal on it with the same DVHs and judgements as `specc plan` (nothing is
optimized, nothing renormalized) and writes the same report and plan.json, marked as a check
of an external dose with the file's SHA-256, so `specc compare` can set it beside a specc plan.

Three sources: a plan export folder (CT + RTSTRUCT + RT Dose, and the RT Plan when present:
structures on the dose grid); a specc case file with an RT Dose (the dose interpolated onto
the case grid, so specc's and the other system's plans are measured on the same masks); a
matRad workspace, measured as matRad measures it: on its CT grid, resultGUI's own, with the
cst{i,4} voxels of its structures (a case given with it files the check under that case, its id and
SHA-256, and must be of that workspace: `read_matrad_plan` refuses a case of another workspace, or one
from elsewhere sharing no structure name or space with it, and a partial match is a record warning), or
with `measure_on="case"` as specc measures its own plan of the case: resultGUI interpolated onto the case's grid, the case's masks
(the reading a comparison of plans needs: the two systems' own readings differ by the grid). A
structure part of which has no dose (beyond the dose grid) is measured on the rest for its DVH,
and its goals are reported NOT EVALUATED with the reason, never judged on part of it; one wholly
beyond (a distant organ outside the calculation volume) has no DVH, its goals read NOT EVALUATED
too, and every other goal is judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from specc.case import Case
from specc.case.importers.plan_export import read_plan_export
from specc.case.importers.external_dose import ExternalDose, same_grid
from specc.case.importers.matrad_dose import MatradPlan, is_matrad_workspace, read_matrad_plan
from specc.case.importers.rtdose import read_rtdose
from specc.case.model import grid_text
from specc.compile import ResolvedStructures, resolve_structures
from specc.compile.case_limits import with_case_limits
from specc.composite import require_one_frame, with_prior_dose
from specc.errors import CaseError, CompileError, SpeccError
from specc.evaluate import DoseSourceRecord, PlanRecord, evaluate_dose
from specc.evaluate.record import MEASURED_ON, STRUCTURES, STRUCTURES_SHA256
from specc.evaluate.indices import OutsideHotSpot
from specc.evaluate.record import GridInfo
from specc.pipeline import (
    CaseProgress,
    CohortEntry,
    CohortOutcome,
    StageProgress,
    StageTimer,
    changed_in_memory_note,
    check_plan_folder,
    folder_name,
    planned_protocol,
    run_cohort,
    staged_plan,
    writing,
)
from specc.protocol import Protocol
from specc.report import write_report
from specc.report.identity import PLAN_JSON, record_json

# Where a matRad workspace's dose is measured: "ct", as matRad measures its DVHs (its CT grid, the
# cst{i,4} voxels); "case", as specc measures its plan of the case (the case's grid and masks).
MeasureOn = Literal["ct", "case"]


@dataclass(frozen=True)
class CheckOutcome:
    """What `check` measured and wrote."""

    record: PlanRecord
    paths: list[Path]
    timings_s: dict[str, float]
    # a hot spot outside the targets above 110% of the highest level, for the summary line (None: none)
    outside_hot_spot: OutsideHotSpot | None = None

    # What a cohort lists for the case (`CohortEntry`, cohort.csv), as `PlanOutcome` gives for a plan.
    succeeded = True
    solver_name = ""
    status = "checked"
    message = ""

    def exit_code(self, strict: bool = False) -> int:
        """0: checked; 2: `strict` and the dose file says its plan did not converge, or a priority-1 goal failed or not
        evaluated, other than one on a structure the protocol allows a case to lack (`PlanRecord.stops_strict`)."""
        return 2 if strict and self.record.stops_strict() else 0

    @property
    def notes(self) -> list[str]:
        """What the terminal says: the record's notes and those of reading a prior dose (the report gives those
        in its prior-dose paragraph: a prior course missing over an organ changes its composite goals)."""
        prior = self.record.prior_dose.notes if self.record.prior_dose is not None else []
        return [*self.record.notes, *prior]


def check_export(
    protocol: Protocol | str | Path,
    folder: str | Path,
    out_dir: str | Path,
    *,
    dose_file: str | Path | None = None,
    grid_mm: float | None = None,
    outside_zero: bool = False,
    per_fraction: bool = False,
    pdf: bool = False,
    progress: StageProgress | None = None,
    prior_dose: Sequence[str | Path] = (),
) -> CheckOutcome:
    """Check the RT Dose of a plan export folder against `protocol` (see module docstring).

    `outside_zero`: voxels of structures beyond the RT Dose grid get 0 Gy, said in the notes
    and the record, instead of leaving those structures' goals unjudged. `per_fraction`: the
    RT Dose holds one fraction whatever its DoseSummationType says (multiplied by the fractions).
    `prior_dose`: a prior course's dose files, for a protocol with `prescription.prior`: the
    composite (prior + the checked dose) is judged (`specc.composite`). `out_dir` is checked
    before anything is read (`check_plan_folder`).
    """
    check_plan_folder(Path(out_dir))  # before reading an export that a folder no check can go into would waste
    stages = StageTimer(progress)
    protocol = _loaded(protocol, stages, prior_dose)
    read = _read_export(protocol, folder, dose_file, grid_mm, outside_zero, per_fraction, stages)
    return _measure(protocol, _with_prior(protocol, read, prior_dose, stages), out_dir, pdf, stages)


def check_cohort(
    protocol: Protocol | str | Path,
    folders: Sequence[str | Path],
    out_dir: str | Path,
    *,
    grid_mm: float | None = None,
    outside_zero: bool = False,
    per_fraction: bool = False,
    pdf: bool = False,
    progress: StageProgress | None = None,
    case_progress: CaseProgress | None = None,
    strict: bool = False,
) -> CohortOutcome:
    """Check each plan export folder into `out_dir`/<patient id>/ and write `out_dir`/cohort.csv.

    The same layout and summary as `plan_cohort`, so `specc compare` sets a clinic's plans of a
    cohort beside specc's. A folder that cannot be read or checked is recorded with its error
    and the next one is checked. `strict`: each row's exit code is that of `specc check --strict`.
    A protocol changed in memory is recorded as such, as `plan_cohort` records it (`as_planned`).
    """
    # run_cohort refuses a composite, and checks `out_dir` before any folder is read
    loaded = planned_protocol(protocol)

    def check_one(folder: Path, out: Path, taken: set[str]) -> CohortEntry:
        stages = StageTimer(progress)
        case_id, target, read = None, None, None
        try:
            read = _read_export(loaded, folder, None, grid_mm, outside_zero, per_fraction, stages)
            case_id = read.case.case_id
            target = out / folder_name(case_id, taken)
            taken.add(target.name)
            return CohortEntry(str(folder), case_id, target, _measure(loaded, read, target, pdf, stages), None)
        except SpeccError as error:
            # an export read but not checked keeps its case's SHA-256, as a cohort's case without a plan does
            return CohortEntry(str(folder), case_id, target, None, str(error),
                               read_sha256=read.case.content_hash() if read is not None else None)

    return run_cohort(loaded, folders, out_dir, check_one, case_progress, pdf, strict)


@dataclass(frozen=True)
class _Read:
    """A dose read for a check, on the case it is judged on."""

    case: Case
    resolved: ResolvedStructures
    dose: np.ndarray
    known: np.ndarray
    source: DoseSourceRecord
    notes: list[str]
    isocentre_mm: tuple[float, float, float] | None = None  # the checked plan's, from its RT Plan
    # The case the check is filed under where it is not the one measured on: a case given with a matRad
    # workspace measured on its CT grid (its id, SHA-256 and source go on the record, so compare pairs them)
    filed_under: Case | None = None
    # What a signer must see before the goals (the record's warnings): a case given with a matRad workspace
    # that matches it only in part
    warnings: list[str] = dataclasses.field(default_factory=list)


def _read_export(
    protocol: Protocol, folder: str | Path, dose_file: str | Path | None, grid_mm: float | None, outside_zero: bool,
    per_fraction: bool, stages: StageTimer,
) -> _Read:
    with stages.stage("read dose"):
        exported = read_plan_export(
            folder, protocol.prescription.fractions, dose_file=dose_file, grid_mm=grid_mm, outside_zero=outside_zero,
            per_fraction=per_fraction,
        )
        case, dose = exported.case, exported.dose
        resolved, values, known, notes = _on_case(
            protocol, case, dose, exported.notes, outside_zero, exported.left_out, exported.outside_grid
        )
        # With every voxel beyond the dose at 0 Gy on a grid holding every contour, nothing is left unknown.
        incomplete = {} if outside_zero else _carried(protocol, resolved, exported.incomplete)
    source = _source_record(dose, case, incomplete=incomplete, plan=exported.plan_attributes, outside_zero=outside_zero)
    return _Read(case, resolved, values, known, source, notes, exported.isocentre_mm)


def _on_case(
    protocol: Protocol, case: Case, dose: ExternalDose, notes: list[str], outside_zero: bool,
    left_out: Sequence[str] = (), outside_grid: Mapping[str, str] | None = None,
) -> tuple[ResolvedStructures, np.ndarray, np.ndarray, list[str]]:
    """The protocol's structures on `case`, the dose on its grid (and where it is known), checked
    for a fraction read as a total; with `outside_zero`, 0 Gy where the dose grid gives none.
    `left_out`: why ROIs of an export are not structures, for the error when a goal names one;
    `outside_grid`: those wholly outside the dose grid, by ROI name, whose structures are absent with that reason."""
    resolved = _resolved(protocol, case, left_out, outside_grid)
    values, known = dose.on_grid(case.grid)
    _plausible(protocol, resolved, values, known, dose)
    notes = [*notes, *_interpolation_note(case, dose), *resolved.notes]
    if outside_zero:
        notes += [f"{name}: {text} and are counted at 0 Gy (--outside-zero)" for name, text in _outside(resolved, known, dose)]
        values, known = np.where(known, values, 0.0), np.ones_like(known)
    else:
        notes += _wholly_outside_note(resolved, known, dose)
    return resolved, values, known, notes


def _interpolation_note(case: Case, dose: ExternalDose) -> list[str]:
    """Where the dose is measured on another grid than its own, the two grids, and whether it was interpolated."""
    if dose.has_grid(case.grid):
        return []
    if dose.taken_as_stored(case.grid):
        return [
            f"{dose.path.name}: taken as stored on the evaluation grid ({grid_text(case.grid)}), whose voxel centres "
            f"are its own ({grid_text(dose.grid)}): nothing interpolated"
        ]
    return [
        f"{dose.path.name}: interpolated (trilinear) from its own grid ({grid_text(dose.grid)}) onto the evaluation "
        f"grid ({grid_text(case.grid)}), where every structure and goal is measured"
    ]


def _outside(resolved: ResolvedStructures, known: np.ndarray, dose: ExternalDose) -> list[tuple[str, str]]:
    """Each structure with voxels where the dose grid gives no dose, and how many."""
    return [
        (name, f"{f'all its voxels ({voxels})' if outside == voxels else f'{outside} of its {voxels} voxels'} lie "
               f"outside the dose grid of {dose.path.name}")
        for name, mask in resolved.masks.items()
        if (outside := int(np.count_nonzero(mask & ~known))) and (voxels := int(np.count_nonzero(mask)))
    ]


def _wholly_outside_note(resolved: ResolvedStructures, known: np.ndarray, dose: ExternalDose) -> list[str]:
    """One note naming every structure without any dose (a distant organ beyond the calculation volume):
    their goals read NOT EVALUATED, the rest are judged, and the user may state the other reading. An
    export's ROI wholly outside has no voxel on its grid (`ResolvedStructures.without_voxels`); a case's has
    its voxels, none known."""
    names = [
        name for name in resolved.roles if name in resolved.without_voxels
        or (name in resolved.masks and not (resolved.masks[name] & known).any())
    ]
    if not names:
        return []
    return [
        f"{', '.join(names)}: wholly outside the dose grid of {dose.path.name}: no DVH, and their goals read NOT "
        "EVALUATED (--outside-zero counts their voxels at 0 Gy, if the calculation volume held all the dose)"
    ]


def check_dose(
    protocol: Protocol | str | Path,
    case: Case | str | Path | None,
    dose_file: str | Path,
    out_dir: str | Path,
    *,
    outside_zero: bool = False,
    per_fraction: bool = False,
    pdf: bool = False,
    progress: StageProgress | None = None,
    prior_dose: Sequence[str | Path] = (),
    measure_on: MeasureOn = "ct",
) -> CheckOutcome:
    """Check a dose against `protocol`.

    `dose_file`: a DICOM RT Dose, interpolated onto `case`'s grid and judged on its structures;
    or a matRad workspace (.mat) whose resultGUI holds matRad's plan (always one fraction).
    `measure_on` "ct": judged as matRad measures it, on the workspace's CT grid with its cst{i,4}
    structures, whatever grid `case` has (`case` then files the check under its id and SHA-256, and is
    refused when it was imported from another workspace or, from elsewhere, shares no structure name or
    space with it; a partial match is one of the record's warnings. None: filed under the workspace's stem
    and its CT structures). "case": judged as specc measures its own plan of `case` (needed), resultGUI
    interpolated onto the case's grid with the case's masks, so that it compares with that plan like for
    like. `outside_zero`, `per_fraction`, `prior_dose`, `out_dir`: as for `check_export`.
    """
    check_plan_folder(Path(out_dir))
    stages = StageTimer(progress)
    protocol = _loaded(protocol, stages, prior_dose)
    case_file = None
    if case is not None and not isinstance(case, Case):
        with stages.stage("load case"):
            case_file, case = Path(case), Case.load(case)
    with stages.stage("read dose"):
        read = _case_and_dose(case, case_file, Path(dose_file), protocol.prescription.fractions, per_fraction, measure_on)
        resolved, values, known, notes = _on_case(
            protocol, read.measured_on, read.dose, read.notes, outside_zero, read.left_out
        )
        incomplete = {} if outside_zero else {
            name: f"{text}: they have no dose" for name, text in _outside(resolved, known, read.dose)
        }
    source = _source_record(read.dose, read.measured_on, incomplete=incomplete, plan={}, outside_zero=outside_zero,
                            attributes=read.attributes)
    checked = _Read(read.measured_on, resolved, values, known, source, notes, filed_under=read.filed_under,
                    warnings=read.warnings)
    return _measure(protocol, _with_prior(protocol, checked, prior_dose, stages), out_dir, pdf, stages)


def _with_prior(protocol: Protocol, read: _Read, prior_dose: Sequence[str | Path], stages: StageTimer) -> _Read:
    """The read dose plus a prior course's, where the dose is known: the composite a prior course's protocol judges."""
    if not prior_dose:
        return read
    with stages.stage("read prior dose"):
        case = with_prior_dose(read.case, prior_dose)
        # a case without a Frame of Reference places each file alone: the checked dose and the prior must agree
        require_one_frame([(read.source.file, read.source.attributes.get("FrameOfReferenceUID")),
                           *((source.file, source.frame_of_reference_uid) for source in case.prior_dose.sources)])
    mismatch = protocol.prior_courses_mismatch(case.prior_dose.several_courses, case.prior_dose.stated_fractions)
    if mismatch is not None:
        raise CaseError(mismatch)  # located at `prescription.prior.fractions`
    dose = np.where(read.known, read.dose + case.prior_dose.total_gy, read.dose)
    return dataclasses.replace(read, case=case, dose=dose)


def _loaded(protocol: Protocol | str | Path, stages: StageTimer, prior_dose: Sequence[str | Path] = ()) -> Protocol:
    """The protocol to check against, with the source its record names (`as_planned`: a protocol changed in
    memory is not recorded as its file)."""
    protocol = planned_protocol(protocol, stages)
    mismatch = protocol.prescription.prior_mismatch(bool(prior_dose))
    if mismatch is not None:
        raise CaseError(f"{protocol.source.path}: {mismatch}")
    return protocol


def _resolved(
    protocol: Protocol, case: Case, left_out: Sequence[str], outside_grid: Mapping[str, str] | None = None
) -> ResolvedStructures:
    """The protocol's masks on the case; a missing structure's error names those the reader left out.
    `outside_grid`: an export's ROIs wholly outside the dose grid, by name, and why (`resolve_structures`).
    Those are left out of the error's list: resolution matched them as structures (a name not found is
    offered them), and an error on one gives its reason itself."""
    outside_grid = outside_grid or {}
    try:
        return resolve_structures(protocol, case, outside_grid)
    except CompileError as error:
        others = [line for line in left_out
                  if not any(line.startswith(f"ROI {roi}: {why}") for roi, why in outside_grid.items())]
        if not others:
            raise
        raise CompileError(f"{error} ({'; '.join(others)})") from None


@dataclass(frozen=True)
class _DoseOnCase:
    """A dose file read for `check_dose`, with the case it is measured on and what the record says of that."""

    measured_on: Case
    dose: ExternalDose
    notes: list[str]
    left_out: list[str]  # structures the reader left out, and why (for the error when a goal names one)
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)  # added to the dose source record's
    filed_under: Case | None = None  # the case the record names, where it is not `measured_on`
    warnings: list[str] = dataclasses.field(default_factory=list)  # the record's (`_Read.warnings`)


def _case_and_dose(
    case: Case | None, case_file: Path | None, path: Path, fractions: int, per_fraction: bool, measure_on: MeasureOn
) -> _DoseOnCase:
    """The case a dose is measured on, the dose (the total of `fractions`) and the notes of reading them:
    for a matRad workspace, its own CT grid and cst (`case`, read from `case_file`, must be of that
    workspace where it tells: `read_matrad_plan`) or `case` itself (`measure_on` "case"), else `case`
    with an RT Dose."""
    if is_matrad_workspace(path):
        if measure_on == "case" and case is None:
            raise CaseError(
                f"{path}: --measure-on case measures matRad's dose on a case's grid with its masks: give the case "
                "(--case CASE.h5)"
            )
        plan = read_matrad_plan(path, fractions, case, case_file)
        if measure_on == "case" and case is not None:
            return _on_the_case(plan, case, path)
        attributes = {
            MEASURED_ON: "the workspace's CT grid with its cst{i,4} voxels, as matRad measures its DVHs",
            STRUCTURES: f"cst{{i,4}} voxels of {path.name} on its CT grid",
            STRUCTURES_SHA256: plan.case.content_hash(),
        }
        notes = [*plan.dose.notes, plan.measured_on_ct, *plan.left_out, *_unused_case_note(case, plan.case)]
        return _DoseOnCase(plan.case, plan.dose, notes, plan.left_out, attributes, filed_under=case,
                           warnings=plan.warnings)
    if measure_on != "ct":
        raise CaseError(f"{path}: --measure-on applies to a matRad workspace; an RT Dose is measured on the case's grid")
    if case is None:
        raise CaseError(f"{path}: an RT Dose is checked on a case's structures: give the case (--case CASE.h5)")
    dose = read_rtdose(path, fractions, per_fraction)
    return _DoseOnCase(case, dose, [*dose.notes, *_frame_note(case, dose)], [])


def _on_the_case(plan: MatradPlan, case: Case, path: Path) -> _DoseOnCase:
    """matRad's dose on `case`'s grid with its masks, as specc measures its own plan of the case (the
    case checked to be of the workspace by `read_matrad_plan`): interpolated (trilinear) unless the grids
    coincide (`_interpolation_note` says which). The CT grid's own note and its left-out cst rows are the CT
    case's, not this reading's (`MatradPlan.measured_on_ct`)."""
    note = (
        f"{path.name}: measured as specc measures its plan of the case {case.case_id!r} (--measure-on case): on the "
        f"case's grid ({grid_text(case.grid)}) with the case's masks, so that it compares with that plan like for "
        f"like; matRad's own DVHs, on its CT grid ({grid_text(plan.case.grid)}) with the cst{{i,4}} voxels, may "
        "read otherwise (the check without --measure-on case gives those)"
    )
    attributes = {MEASURED_ON: f"the case {case.case_id!r}'s grid and masks, as specc measures its plans (--measure-on case)"}
    return _DoseOnCase(case, plan.dose, [*plan.dose.notes, note], [], attributes, warnings=plan.warnings)


def _unused_case_note(case: Case | None, measured_on: Case) -> list[str]:
    """A case given with a matRad workspace whose grid is not the CT grid matRad measures on (the
    dose grid `specc import matrad` places it on): the check is filed under it, its masks are not used,
    and the note says so and how to measure like for like."""
    if case is None or same_grid(case.grid, measured_on.grid):
        return []
    return [
        f"the case {case.case_id!r} lies on another grid ({grid_text(case.grid)}) than the workspace's CT "
        f"({grid_text(measured_on.grid)}): the check is filed under it, but its masks are not used; matRad's dose is "
        "measured on the CT grid with the workspace's cst{i,4} structures, as matRad's DVHs are. A specc plan of that "
        "case is measured on its own grid: to compare the two plans, check with --measure-on case (matRad's dose on "
        "the case's grid and masks)"
    ]


# How far a target's median dose may sit from one fraction's (or N totals') prescription and
# still be read as that confusion: a factor either way.
_CONFUSION_FACTOR = 1.5
# No external-beam plan gives its target a median of three times its prescription: even a
# radiosurgery plan prescribed to its 50% isodose peaks at twice it, and its median lies below.
# A dose beyond is in other units than it says (cGy labelled Gy: about 100 times) or scaled twice.
_IMPLAUSIBLE_FACTOR = 3.0
_CGY_PER_GY = 100.0


def _plausible(
    protocol: Protocol, resolved: ResolvedStructures, values: np.ndarray, known: np.ndarray, dose: ExternalDose
) -> None:
    """Refuse a dose that reads as one fraction where a total was meant (or the reverse), or
    that no plan in Gy could be.

    A mislabelled file (a fraction written as the plan sum, or a plan sum multiplied by the
    fractions) puts the target's median at the prescription divided (multiplied) by the
    fractions; judged as it stands, every goal would read as failed or passed for the wrong
    reason. The user says which (`--per-fraction`) rather than specc guessing. A median far
    above any plan's (`_IMPLAUSIBLE_FACTOR`) has no such reading to choose: the file's units or
    scaling are wrong, and its coverage goals would pass on a dose no patient could receive.
    """
    fractions = protocol.prescription.fractions
    level = max(protocol.prescription.levels, key=lambda level: level.dose.gy)
    mask = resolved.masks.get(level.target)
    if mask is None or not (mask & known).any():
        return
    median = float(np.median(values[mask & known]))
    prescribed = level.plan_dose_gy  # the checked dose's own share (a composite's prior course is added after)
    one_fraction, all_fractions = prescribed / fractions, prescribed * fractions
    dicom = dose.format.startswith("DICOM RT Dose")
    written = f"DoseSummationType {dose.summation}" if dicom else dose.summation
    # Never within half to twice the prescription: a plan there, however poor, is judged as it
    # stands. (With one fraction both bands below are empty.)
    if dose.fractions_scaled is None and one_fraction / _CONFUSION_FACTOR <= median <= min(
        one_fraction * _CONFUSION_FACTOR, prescribed / 2
    ):
        raise CaseError(
            f"{dose.path}: {level.target} receives {median:.2f} Gy at its median, about one fraction of its "
            f"{prescribed:g} Gy in {fractions} ({one_fraction:.2f} Gy), though the file says it holds the total "
            f"({written}). If it holds one fraction, check it with --per-fraction"
        )
    if dose.fractions_scaled is not None and max(all_fractions / _CONFUSION_FACTOR, prescribed * 2) <= median <= (
        all_fractions * _CONFUSION_FACTOR
    ):
        raise CaseError(
            f"{dose.path}: multiplied by {fractions} fractions, {level.target} receives {median:.2f} Gy at its median, "
            f"about {fractions} times its {prescribed:g} Gy: the file holds the total already"
            + (_scaled_by_mistake(dose) if dicom else "")
        )
    if median > _IMPLAUSIBLE_FACTOR * prescribed:
        raise CaseError(_implausibly_high(protocol, level.target, median, prescribed, dose))


def _scaled_by_mistake(dose: ExternalDose) -> str:
    """What multiplied a total by the fractions: the file's own word for one fraction, or --per-fraction."""
    if dose.summation in ("FRACTION_SESSION", "BEAM_SESSION"):
        return (f", though its DoseSummationType {dose.summation} says one fraction: the exporting system labelled it "
                "wrongly (export the plan sum, PLAN)")
    return " (leave out --per-fraction)"


def _implausibly_high(protocol: Protocol, target: str, median: float, prescribed: float, dose: ExternalDose) -> str:
    """Why a target median above `_IMPLAUSIBLE_FACTOR` times its prescription is refused, with the likely cause."""
    ratio = median / prescribed
    fractions = protocol.prescription.fractions

    def near(factor: float) -> bool:
        return factor / _CONFUSION_FACTOR <= ratio <= factor * _CONFUSION_FACTOR

    scaled = f"multiplied by {dose.fractions_scaled} fractions, " if dose.fractions_scaled else ""
    dicom = dose.format.startswith("DICOM RT Dose")
    fields = "DoseUnits and DoseGridScaling" if dicom else f"the units of the {dose.format}"
    causes = []
    if near(_CGY_PER_GY):
        causes.append(
            f"about {_CGY_PER_GY:g} times, as cGy values labelled Gy would be"
            + (" (DoseUnits GY with a DoseGridScaling giving cGy)" if dicom else "")
        )
    if dose.fractions_scaled is None and near(fractions):
        causes.append(f"about {fractions} times, as a total multiplied by its {fractions} fractions once more would be")
    if protocol.prescription.prior is not None:
        causes.append("with a prior course, the file must hold this plan's own dose, not the composite")
    return (
        f"{dose.path}: {scaled}{target} receives {median:.1f} Gy at its median, {ratio:.0f} times its {prescribed:g} Gy: "
        f"no external-beam plan gives its target more than {_IMPLAUSIBLE_FACTOR:g} times its prescription, so the values "
        f"are not the Gy the file says" + "".join(f"; {cause}" for cause in causes)
        + f". Check {fields} in the export and export the dose again in Gy: no option makes specc judge it as it stands"
    )


def _frame_note(case: Case, dose: ExternalDose) -> list[str]:
    """The dose must be in the case's Frame of Reference when both know theirs (else a note says so)."""
    return dose.placed_on(case.metadata.extra.get("dicom.FrameOfReferenceUID"), f"the case {case.case_id!r}")


def _carried(protocol: Protocol, resolved: ResolvedStructures, by_case_name: Mapping[str, str]) -> dict[str, str]:
    """Incomplete case structures under their protocol names, and the derived structures that may be.

    A structure read from its `parts` (the union of case structures) is incomplete when any part is: its
    maximum or mean over the rest is not the organ's. A derived structure inside a whole structure by construction (`A - B`, `A & B`, a crop, a
    shrink: `StructureExpr.within`) is whole. Otherwise it is incomplete when it is made from an
    incomplete one (`StructureExpr.sources`: a subtracted structure only removes voxels), or when
    it reaches the dose grid's outer faces (a margin or a ring computed on the grid stops there,
    though the structure would go on where there is no dose).
    """
    incomplete = {
        name: by_case_name[case_name] for name, case_name in resolved.case_names.items() if case_name in by_case_name
    }
    for name, case_names in resolved.parts.items():
        if cut := [case_name for case_name in case_names if case_name in by_case_name]:
            incomplete[name] = "; ".join(f"its part {case_name!r}: {by_case_name[case_name]}" for case_name in cut)
    incomplete |= resolved.without_voxels  # wholly outside: no DVH, and what is built from them is incomplete
    pending = [name for name, spec in protocol.structures.items() if spec.expression is not None and name in resolved.masks]
    while pending:  # derived structures may build on derived ones: the ready ones first
        ready = [name for name in pending if not set(protocol.structures[name].expression.names()) & set(pending)]
        for name in ready or pending:
            pending.remove(name)
            expression = protocol.structures[name].expression
            if any(part in resolved.masks and part not in incomplete for part in expression.within()):
                continue
            parts = [part for part in expression.sources() if part in incomplete]
            if parts:
                incomplete[name] = f"built from {', '.join(parts)}, part of which has no dose"
            elif _touches_faces(resolved.masks[name]):
                incomplete[name] = (
                    f"`{expression}` reaches the edge of the dose grid: it may go on beyond, where there is no dose"
                )
    return incomplete


def _touches_faces(mask: np.ndarray) -> bool:
    return any(mask.take(index, axis=axis).any() for axis in range(3) for index in (0, -1))


def _source_record(
    dose: ExternalDose, case: Case, *, incomplete: dict[str, str], plan: dict[str, str], outside_zero: bool,
    attributes: Mapping[str, str] | None = None,
) -> DoseSourceRecord:
    """`attributes`: what the check adds to the file's own (where and on which masks it measured)."""
    grid = dose.grid
    return DoseSourceRecord(
        format=dose.format,
        file=str(dose.path),
        sha256=dose.sha256,
        dose_type=dose.dose_type,
        summation=dose.summation,
        fractions_scaled=dose.fractions_scaled,
        grid=GridInfo(shape=grid.shape, spacing_mm=grid.spacing_mm, origin_mm=grid.origin_mm),
        interpolated=not (dose.has_grid(case.grid) or dose.taken_as_stored(case.grid)),
        attributes={**dose.attributes, **(attributes or {})},
        plan=plan,
        incomplete=incomplete,
        outside_zero=outside_zero,
        parts=dose.parts,
    )


def _filed_under(read: _Read, record: PlanRecord) -> dict[str, object]:
    """The record's case block for a check filed under another case than it was measured on (a case given with a
    matRad workspace measured on its CT grid): that case's id, content SHA-256 and source, so that `specc compare`
    pairs the check with a plan of it; the grid stays the one measured on, and the dose source record keeps the
    SHA-256 of the CT structures measured (`STRUCTURES_SHA256`)."""
    case = read.filed_under
    if case is None:
        return {}
    return {"case": record.case.model_copy(
        update={"case_id": case.case_id, "sha256": case.content_hash(), "source": case.metadata.source}
    )}


def _measure(protocol: Protocol, read: _Read, out_dir: str | Path, pdf: bool, stages: StageTimer) -> CheckOutcome:
    out = Path(out_dir)
    # the case's protocol: goal limits by a structure's volume read on the masks the dose is judged on
    protocol = with_case_limits(protocol, read.resolved.masks, read.case.voxel_volume_cc, read.resolved.absent)
    with stages.stage("evaluate"):
        evaluation = evaluate_dose(
            protocol, read.case, read.resolved.masks, read.dose, read.known, read.source, dict(stages.timings),
            [*changed_in_memory_note(protocol, "check"), *read.notes], read.isocentre_mm,
            absent=read.resolved.absent,
            partial=read.resolved.partial,
            allowed_absent=read.resolved.allowed_absent,
            collapsed_targets=read.resolved.collapsed_targets,
        )
    # staged as a plan is: whole, moved in with plan.json last, or none (a kill -9 part way included)
    with stages.stage("report"), staged_plan(out, "no check written") as staged:
        folder = staged.path
        record = evaluation.record.model_copy(update={
            "timings_s": dict(stages.timings), "warnings": [*evaluation.record.warnings, *read.warnings],
            **_filed_under(read, evaluation.record),
        })
        paths = write_report(folder, record, read.case, evaluation, read.resolved.masks, pdf=pdf, named_in=out)
        with writing(out / PLAN_JSON, "no check written"):
            # the bytes the report's digest is of
            (folder / PLAN_JSON).write_bytes(record_json(record).encode("utf-8"))
        paths.append(folder / PLAN_JSON)
    paths = [staged.final(path) for path in paths]
    return CheckOutcome(record=record, paths=paths, timings_s=dict(stages.timings),
                        outside_hot_spot=evaluation.outside_hot_spot)
