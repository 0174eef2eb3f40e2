"""The prior dose of a composite plan, read from the files a clinic has (docs/composite.md).

A sequential boost is planned on its initial course's dose, a re-irradiation on the earlier
course's: `specc plan PROTOCOL --case CASE --prior-dose FILE [--prior-dose FILE ...]`, for a
protocol that declares `prescription.prior`. Each file is a total dose in Gy:

- a specc result.h5: its plan's dose, and its own prior dose when it was a composite plan
  too (a third course stands on both earlier ones);
- a DICOM RT Dose holding a total (DoseSummationType PLAN, MULTI_PLAN or FRACTION; one
  session's or one beam's dose is refused: it is not a course);
- a matRad workspace (.mat) with resultGUI: one fraction's dose times the workspace's own
  `pln.numOfFractions` (refused when it states none).

The files are placed on the case grid by their coordinates (taken as stored where the voxel
centres coincide, else trilinear), refused when their Frame of Reference is not the case's or
when two of them name different ones (a case without one, a phantom or an HDF5 case, cannot
tell which is its own: a note says that a file is placed by its coordinates alone), summed as
physical dose, and recorded with their SHA-256. A protocol's EQD2 / BED goals convert the
prior dose in the prior course's own fractions, so they take one earlier course: several
files, or a composite plan's result.h5, are refused for them (`Protocol.prior_courses_mismatch`).
Voxels of the case beyond a file's grid get 0 Gy from it, and a note names the structures
that reach there; a file that covers none of the case's dose rows is refused (another site's or
another patient's grid, summed as 0 Gy it would read as a course never given).

A course counted twice doubles every cumulative number. Refused, by SHA-256 (whatever the file's name):
a file given twice; a file that a composite plan's result.h5 given beside it already holds (its plan
record lists the prior files it summed); two composites' result.h5 files that hold one course. A
composite's held result.h5 is read in turn, for a course held two composites deep, where its record's
path still reaches it (unchanged); where not, a note says so and what it holds is not checked. A
course given once as a result.h5 and once as its RT Dose export (two files, two SHA-256s) is not
seen. A result.h5 planned on another case is noted with that case (a re-irradiation is planned on
a new CT, or with new beams, as a new case); a file of another PatientID than the case's is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from specc.case import Case, Grid
from specc.case.importers.external_dose import ExternalDose
from specc.case.importers.matrad_dose import read_matrad_dose
from specc.case.importers.rtdose import read_rtdose
from specc.case.prior import PriorDose, PriorSource
from specc.errors import CaseError
from specc.export.result_file import PlanResult, ResultError, read_result
from specc.hashing import file_sha256


# How a composite plan's result.h5 reads as a prior dose: its course and the ones it stood on.
_WITH_ITS_PRIOR = "PLAN with its own prior dose"


def with_prior_dose(case: Case, paths: Sequence[str | Path]) -> Case:
    """`case` carrying the prior dose its files give (the case itself when there are none)."""
    return case.with_prior(read_prior_dose(paths, case)) if paths else case


def read_prior_dose(paths: Sequence[str | Path], case: Case) -> PriorDose:
    """The sum of the prior dose files on `case`'s grid (see module docstring)."""
    if not paths:
        raise CaseError("no prior dose file given")
    total = np.zeros(case.grid.shape)
    sources, notes = [], []
    rows = np.zeros(case.grid.n_voxels, dtype=bool)
    rows[case.voxel_indices] = True
    read = [_read(path) for path in map(Path, paths)]
    notes += _require_each_course_once(read)
    # what a result.h5 is compared with (hashing the case's matrix once, and only for one)
    case_sha256 = case.content_hash() if any("case_sha256" in dose.attributes for dose, _ in read) else None
    for dose, _ in read:
        path = dose.path
        notes += _placement_notes(dose, case, case_sha256)
        notes += _patient_notes(dose, case, case_sha256)
        notes += dose.notes
        values, known = dose.on_grid(case.grid)
        values = np.where(known, values, 0.0)
        if not (known.ravel() & rows).any():
            raise CaseError(
                f"{path}: its dose grid ({_extent(dose.grid)}) covers none of the case's dose rows (the case "
                f"{case.case_id!r}: {_extent(case.grid)}): a dose of another site or another patient position; "
                "summed, it would give every voxel 0 Gy as if no prior course had been given"
            )
        missing = ~known.ravel() & rows
        if missing.any():
            reaching = [name for name, structure in sorted(case.structures.items()) if (structure.mask.ravel() & missing).any()]
            notes.append(
                f"{path.name}: {int(missing.sum())} voxels of the case's dose rows lie beyond its grid and get 0 Gy from it"
                + (f" (in {', '.join(reaching)})" if reaching else "")
            )
        if not dose.has_grid(case.grid):
            notes.append(
                f"{path.name}: taken as stored on the case grid (the case's voxel centres it covers are its own: "
                "nothing interpolated)"
                if dose.taken_as_stored(case.grid)
                else f"{path.name}: interpolated (trilinear) from its own grid onto the case grid"
            )
        total += values
        several = dose.summation == _WITH_ITS_PRIOR or dose.summation.startswith("MULTI_PLAN")
        stated = dose.attributes.get("fractions")
        fractions = int(stated) if stated is not None else dose.fractions_scaled
        sources.append(PriorSource(
            str(path), dose.sha256, dose.format, float(values.max()), several, fractions, dose.frame_of_reference_uid,
            _patient_id(dose),
        ))
    require_one_frame([(source.file, source.frame_of_reference_uid) for source in sources])
    return PriorDose(total_gy=total, sources=tuple(sources), notes=tuple(notes))


def require_one_frame(doses: Sequence[tuple[str, str | None]]) -> None:
    """Refuse doses to be summed or compared (the prior files; a prior file and the checked dose) of which two
    name different Frames of Reference: they are of two patient positions, and the case, when it names none,
    cannot tell which is its own. `doses`: each file with the Frame of Reference UID it names, if any."""
    named = [(file, frame) for file, frame in doses if frame]
    for file, frame in named[1:]:
        first, first_frame = named[0]
        if frame != first_frame:
            raise CaseError(
                f"{file}: the dose is in Frame of Reference {frame}, {first} in {first_frame}: two patient positions, "
                "whose doses are not summed; register one to the other first (a rigid or deformable sum is not "
                "specc's to make)"
            )


def _require_each_course_once(read: Sequence[tuple[ExternalDose, dict[str, str]]]) -> list[str]:
    """Refuse a course given twice, which the sum would count twice: the same file (by its SHA-256, whatever its
    name) given again, a file that a composite plan's result.h5 given beside it already holds, or a course that
    two composites given together both hold. `read`: each file with the prior files it holds (SHA-256 -> file as
    its plan record names them). With several files, each held result.h5 is read for the prior files it holds
    in turn, where its record's path still reaches it (checked by SHA-256): a course held two composites deep is
    seen too. The notes returned name each held result.h5 that could not be read so (what it holds unchecked)."""
    seen: dict[str, Path] = {}
    for dose, _ in read:
        if dose.sha256 in seen:
            raise CaseError(
                f"{dose.path}: the same file as {seen[dose.sha256]} (SHA-256 {dose.sha256}): its course would be "
                "counted twice; give each prior course's dose once"
            )
        seen[dose.sha256] = dose.path
    if len(read) < 2:
        return []
    notes: list[str] = []
    holding = []
    for dose, held in read:
        everything, unfollowed = _held_through(held)
        holding.append((dose, everything))
        notes += [
            f"{dose.path.name}: holds the specc result.h5 {file}: any prior course that one holds is not checked "
            "against the other prior files"
            for file in unfollowed
        ]
    for composite, held in holding:
        for dose, _ in read:
            if dose.sha256 in held:
                raise CaseError(
                    f"{dose.path}: {composite.path} already holds it (a composite plan summed with its prior dose, "
                    f"{held[dose.sha256]}, SHA-256 {dose.sha256}): its course would be counted twice; give "
                    f"{composite.path} alone, which brings its prior course along"
                )
    for index, (first, first_held) in enumerate(holding):
        for second, second_held in holding[index + 1:]:
            shared = sorted(first_held.keys() & second_held.keys())
            if shared:
                sha256 = shared[0]
                named = "" if second_held[sha256] == first_held[sha256] else f"; the second names it {second_held[sha256]}"
                raise CaseError(
                    f"{first.path} and {second.path} both hold the course of {first_held[sha256]} (SHA-256 "
                    f"{sha256}{named}): summed, that course would be counted twice; give one composite plan, the "
                    "latest course's, which brings its prior courses along"
                )
    return notes


def _held_through(held: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Every prior file `held` (a result.h5's record: SHA-256 -> file) holds, with those its result.h5 files hold
    in turn, read at the path their record names and checked by SHA-256 ('base.h5, held by c2/result.h5'); and
    each held result.h5 that could not be read so, with why."""
    everything, unfollowed = dict(held), []
    for sha256, file in held.items():
        path = Path(file)
        if path.suffix.lower() not in (".h5", ".hdf5"):
            continue
        if not path.is_file() or file_sha256(path) != sha256:
            unfollowed.append(f"{file} (no longer at that path, or changed since)")
            continue
        try:
            inner, inner_unfollowed = _held_through(_held_files(read_result(path)))
        except ResultError as error:
            unfollowed.append(f"{file} ({error})")
            continue
        everything.update({sha: f"{name}, held by {file}" for sha, name in inner.items() if sha not in everything})
        unfollowed += inner_unfollowed
    return everything, unfollowed


def _patient_id(dose: ExternalDose) -> str | None:
    """The PatientID the file names (an RT Dose's own, a result.h5's case's), if it names one."""
    return dose.attributes.get("PatientID") or None


def _patient_notes(dose: ExternalDose, case: Case, case_sha256: str | None) -> list[str]:
    """Refuse a file of another patient than the case's (both name a PatientID and they differ); note the
    PatientID it names, and the other case a result.h5 was planned on (a re-irradiation's new CT or new beams
    make a new case, so that alone is no refusal: the Frame of Reference rules place it)."""
    named, own = _patient_id(dose), case.metadata.extra.get("dicom.PatientID") or None
    if named is not None and own is not None and named != own:
        raise CaseError(
            f"{dose.path}: its PatientID is {named!r}, the case {case.case_id!r} has {own!r}: another patient's dose "
            "is not this patient's prior course"
        )
    notes = [
        f"{dose.path.name}: PatientID {named!r}" + (", the case's too" if named == own else " (the case names none)")
    ] if named else []
    planned_on, sha256 = dose.attributes.get("case_id"), dose.attributes.get("case_sha256")
    if sha256 is not None and sha256 != case_sha256:
        notes.append(
            f"{dose.path.name} was planned on case {planned_on!r} (SHA-256 {sha256}), not on this case "
            f"{case.case_id!r} (SHA-256 {case_sha256}): check that it is this patient's prior course"
        )
    return notes


def _extent(grid: Grid) -> str:
    """Where a grid's voxel centres lie, in mm along x, y and z (LPS)."""
    return ", ".join(
        f"{name} {float(axis.min()):.1f} to {float(axis.max()):.1f}" for name, axis in zip("xyz", grid.axes_mm())
    ) + " mm"


def _placement_notes(dose: ExternalDose, case: Case, case_sha256: str | None) -> list[str]:
    """How the file is placed on the case (`ExternalDose.placed_on`): refused in another Frame of Reference than
    the case's, noted when either names none; a result.h5 planned on this very case (`case_sha256`, its content
    hash) is on its grid by making."""
    notes = dose.placed_on(
        case.metadata.extra.get("dicom.FrameOfReferenceUID"), f"the case {case.case_id!r}",
        "register it to the case's images first (a rigid or deformable sum is not specc's to make)",
    )
    planned_on = dose.attributes.get("case_sha256")
    return [] if notes and planned_on is not None and planned_on == case_sha256 else notes


def _read(path: Path) -> tuple[ExternalDose, dict[str, str]]:
    """The file's dose, and the prior files it holds (SHA-256 -> file: a composite plan's result.h5)."""
    if not path.is_file():
        raise CaseError(f"{path}: no such prior dose file")
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _read_result(path)
    if path.suffix.lower() == ".mat":  # a matRad plan: one fraction, times the workspace's own fractions
        return read_matrad_dose(path, fractions=None), {}
    dose = read_rtdose(path, fractions=1)
    if dose.fractions_scaled is not None:
        raise CaseError(
            f"{path}: DoseSummationType {dose.summation} is one session's dose, not a course's: export the plan sum"
        )
    return dose, {}


def _read_result(path: Path) -> tuple[ExternalDose, dict[str, str]]:
    """A specc result.h5: its composite dose, and the prior files its plan record says it summed."""
    result = read_result(path)
    frame = result.metadata_extra.get("dicom.FrameOfReferenceUID")
    patient = result.metadata_extra.get("dicom.PatientID")
    return ExternalDose(
        format="specc result.h5",
        dose_gy=np.asarray(result.composite_dose_gy, dtype=np.float64),
        grid=result.grid,
        path=path,
        sha256=file_sha256(path),
        dose_type="PHYSICAL",
        summation="PLAN" if result.prior_dose_gy is None else _WITH_ITS_PRIOR,
        fractions_scaled=None,
        attributes={
            "fractions": str(result.fractions), "case_id": result.case_id, "case_sha256": result.case_sha256,
            **({"FrameOfReferenceUID": frame} if frame else {}), **({"PatientID": patient} if patient else {}),
        },
        referenced_plan_uid=None,
    ), _held_files(result)


def _held_files(result: PlanResult) -> dict[str, str]:
    """The prior files a composite plan's result.h5 summed, as its plan record names them: SHA-256 -> file."""
    if result.prior_dose_gy is None or result.record is None or result.record.prior_dose is None:
        return {}
    return {file.sha256: file.file for file in result.record.prior_dose.files}
