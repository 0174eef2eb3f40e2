"""A dose another planning system computed (DICOM RT Dose), read so that specc can check it.

A plan check judges what the other system computed, as it computed it: the stored values
times DoseGridScaling on the RT Dose's own grid, never renormalized. What the file says of
its dose decides what a value means, so everything that could change a number is checked
here and refused with the file named: DoseUnits must be GY (RELATIVE doses have no Gy to
judge). DoseSummationType, as DICOM defines it: PLAN (all fraction groups), MULTI_PLAN and
FRACTION (one fraction group, all its fractions: the plan's total when it has one group) hold
totals; FRACTION_SESSION holds one session, one fraction, and is scaled by the fractions the
caller gives (said so in the notes); BEAM and BEAM_SESSION doses are summed only when every
beam of the RT Plan has one (`sum_beam_doses`), and CONTROL_POINT is refused as part of a
plan; any other value is refused as one specc does not read (not called a part of a plan, which
it may not be). Some systems write FRACTION for one fraction (matRad does): the caller can say so
(`per_fraction`), and the check refuses a dose whose target sits at one fraction's
prescription (`specc.check`). Only axis-aligned grids (prone and feet-first flips included)
are read; oblique ones would need an interpolation the check should not hide. A grid whose
GridFrameOffsetVector and ImagePositionPatient place the first plane at different z (beyond the
plane tolerance, dicom_ct.PLANE_TOLERANCE_FRACTION of the frame spacing) is refused: either reading
shifts the dose along z; so is one whose frames lie farther than it from uniform planes. A file
without the Part-10 header is read as dicom_ct.read_dicom reads one. Geometry that places no voxel
(a position that is not a number, a spacing that is not positive, direction cosines that are not unit vectors) and
pixel data whose length is not what NumberOfFrames, Rows, Columns and BitsAllocated state are
refused naming the file and the attribute.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from specc.case.importers.dicom_ct import (
    POSITION_TOLERANCE_MM, axis_signs, plane_tolerance_mm, plane_tolerance_text, present_attributes, read_dicom,
    undecodable,
)
from specc.case.importers.external_dose import ExternalDose, same_grid
from specc.case.model import Grid
from specc.errors import CaseError

_TOTAL_SUMMATIONS = ("PLAN", "MULTI_PLAN", "FRACTION")
_SESSION_SUMMATIONS = ("FRACTION_SESSION",)
_PARTIAL_SUMMATIONS = ("BEAM", "BEAM_SESSION", "CONTROL_POINT")  # DICOM's parts of a plan
_DOSE_TYPES = ("PHYSICAL", "EFFECTIVE")
# What the report shows of the file, when the file has it.
_DESCRIBING_ATTRIBUTES = (
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "SeriesDescription",
    "DoseComment",
    "InstanceCreationDate",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "PatientID",
)


@dataclass(frozen=True)
class _RtDoseFile:
    """One RT Dose file as stored: its dose in Gy (DoseGridScaling applied, nothing else)."""

    path: Path
    sha256: str  # of the bytes parsed (the file is read once)
    dataset: Dataset
    dose_gy: np.ndarray
    grid: Grid
    dose_type: str
    summation: str
    notes: list[str]  # frames placed within the plane tolerance

    @property
    def attributes(self) -> dict[str, str]:
        return present_attributes(self.dataset, _DESCRIBING_ATTRIBUTES)

    @property
    def referenced_plan(self) -> Dataset | None:
        referenced = self.dataset.get("ReferencedRTPlanSequence")
        return referenced[0] if referenced else None


def read_rtdose(path: str | Path, fractions: int, per_fraction: bool = False) -> ExternalDose:
    """Read an RT Dose file as the total dose of a plan of `fractions` fractions (see module docstring).

    `per_fraction`: the user states that the file holds one fraction, whatever its
    DoseSummationType says (matRad, for one, writes FRACTION for the dose of one fraction).
    """
    read = _read(Path(path))
    path, summation = read.path, read.summation
    if summation in _PARTIAL_SUMMATIONS:
        raise CaseError(
            f"{path}: DoseSummationType {summation} is part of a plan (a beam, a session of beams or a control "
            "point); export the plan sum (PLAN), or the folder with every beam's dose and the RT Plan, to check it"
        )
    if summation not in (*_TOTAL_SUMMATIONS, *_SESSION_SUMMATIONS):
        raise CaseError(
            f"{path}: DoseSummationType {summation} is not one specc reads: it reads a total (PLAN, MULTI_PLAN, "
            "FRACTION), one fraction (FRACTION_SESSION), and beam doses (BEAM, BEAM_SESSION) in a folder with their "
            "RT Plan; export the plan sum (PLAN)"
        )
    notes = list(read.notes)
    scaled: int | None = None
    if per_fraction or summation in _SESSION_SUMMATIONS:
        scaled = int(fractions)
        why = "as stated (--per-fraction)" if per_fraction else "DoseSummationType FRACTION_SESSION"
        notes.append(f"{path.name} holds the dose of one fraction ({why}): multiplied by the protocol's {scaled} fractions")
    elif summation == "MULTI_PLAN":
        notes.append(f"{path.name}: DoseSummationType MULTI_PLAN: the sum of several plans, checked as one total")
    elif summation == "FRACTION":
        notes.append(
            f"{path.name}: DoseSummationType FRACTION: the dose of one fraction group, all its fractions (DICOM), "
            "checked as the plan's total"
        )
    notes += _dose_type_notes(read.dose_type, path.name)
    referenced = read.referenced_plan
    return ExternalDose(
        format="DICOM RT Dose",
        dose_gy=read.dose_gy * scaled if scaled else read.dose_gy,
        grid=read.grid,
        path=path,
        sha256=read.sha256,
        dose_type=read.dose_type,
        summation=summation,
        fractions_scaled=scaled,
        attributes=read.attributes,
        referenced_plan_uid=str(referenced.ReferencedSOPInstanceUID) if referenced is not None else None,
        notes=notes,
    )


def sum_beam_doses(
    paths: list[Path], plan: Dataset, plan_path: Path, fractions: int, per_fraction: bool = False
) -> ExternalDose:
    """The plan's total dose as the sum of its beams' RT Doses (DoseSummationType BEAM, or
    BEAM_SESSION: one session, scaled by `fractions`), which a planning system may export
    instead of a plan sum. The sum is taken only when it is provably the whole plan: every file
    references `plan` and names its beam, the beams are those of the plan's one fraction group,
    each once, and the files share one grid, dose type and Frame of Reference."""
    reads = [_read(Path(path)) for path in sorted(paths)]
    plan_uid = str(plan.get("SOPInstanceUID", ""))
    summations = {read.summation for read in reads}
    if len(summations) != 1 or not summations <= {"BEAM", "BEAM_SESSION"}:
        listed = ", ".join(f"{read.path.name} ({read.summation})" for read in reads)
        raise CaseError(f"{plan_path.parent}: beam doses of different kinds ({listed}); export the plan sum (PLAN)")
    summation = summations.pop()
    beams: dict[int, Path] = {}
    for read in reads:
        number = _referenced_beam(read, plan_uid, plan_path)
        if number in beams:
            raise CaseError(f"{read.path}: beam {number} again (also {beams[number].name}); one dose per beam is summed")
        beams[number] = read.path
    groups = plan.get("FractionGroupSequence", [])
    if len(groups) != 1:
        raise CaseError(
            f"{plan_path}: {len(groups)} fraction groups; the beam doses cannot be summed into one plan: export the plan sum"
        )
    planned = sorted(int(item.ReferencedBeamNumber) for item in groups[0].get("ReferencedBeamSequence", []))
    if not planned:
        raise CaseError(f"{plan_path}: the fraction group lists no beams, so the beam doses cannot be shown to be the whole plan")
    if sorted(beams) != planned:
        missing = sorted(set(planned) - set(beams))
        extra = sorted(set(beams) - set(planned))
        raise CaseError(
            f"{plan_path.parent}: the RT Plan {plan_path.name} delivers beams {planned}, the beam doses are of "
            f"{sorted(beams)}" + (f" (missing {missing})" if missing else "") + (f" (not in the plan: {extra})" if extra else "")
            + ": the sum would not be the plan's dose"
        )
    first = reads[0]
    for read in reads[1:]:
        if not same_grid(read.grid, first.grid):
            raise CaseError(
                f"{read.path}: its dose grid differs from {first.path.name}'s; beam doses are summed only on one grid"
            )
        if read.dose_type != first.dose_type:
            raise CaseError(f"{read.path}: DoseType {read.dose_type}, {first.path.name} has {first.dose_type}")
        if read.attributes.get("FrameOfReferenceUID") != first.attributes.get("FrameOfReferenceUID"):
            raise CaseError(f"{read.path}: another Frame of Reference than {first.path.name}")
    total = reads[0].dose_gy.copy()
    for read in reads[1:]:
        total += read.dose_gy
    names = ", ".join(f"{path.name} (beam {number})" for number, path in sorted(beams.items()))
    notes = [f"the plan's dose is the sum of {len(reads)} beam doses (DoseSummationType {summation}): {names}"]
    notes += [note for read in reads for note in read.notes]
    scaled: int | None = None
    if per_fraction or summation == "BEAM_SESSION":
        scaled = int(fractions)
        why = "as stated (--per-fraction)" if per_fraction else "DoseSummationType BEAM_SESSION"
        notes.append(f"the beam doses hold one fraction ({why}): their sum multiplied by the protocol's {scaled} fractions")
    notes += _dose_type_notes(first.dose_type, "the beam doses")
    parts = {read.path.name: read.sha256 for read in reads}
    combined = hashlib.sha256("".join(f"{name}\0{digest}\n" for name, digest in parts.items()).encode()).hexdigest()
    return ExternalDose(
        format=f"DICOM RT Dose, {len(reads)} beam doses summed",
        dose_gy=total * scaled if scaled else total,
        grid=first.grid,
        path=plan_path.parent,
        sha256=combined,
        dose_type=first.dose_type,
        summation=summation,
        fractions_scaled=scaled,
        attributes=first.attributes,
        referenced_plan_uid=plan_uid,
        notes=notes,
        parts=parts,
    )


def _referenced_beam(read: _RtDoseFile, plan_uid: str, plan_path: Path) -> int:
    referenced = read.referenced_plan
    if referenced is None or str(referenced.get("ReferencedSOPInstanceUID", "")) != plan_uid:
        raise CaseError(f"{read.path}: a beam dose that does not reference the RT Plan {plan_path.name}; it cannot be summed")
    try:
        return int(referenced.ReferencedFractionGroupSequence[0].ReferencedBeamSequence[0].ReferencedBeamNumber)
    except (AttributeError, IndexError):
        raise CaseError(f"{read.path}: a beam dose that does not say which beam it is (ReferencedBeamNumber)") from None


def _dose_type_notes(dose_type: str, what: str) -> list[str]:
    if dose_type == "EFFECTIVE":
        return [f"{what}: DoseType EFFECTIVE: the values are weighted doses (e.g. RBE), judged as written"]
    return []


def _read(path: Path) -> _RtDoseFile:
    """An RT Dose file's dose in Gy on its grid, with every attribute that changes a value checked."""
    try:
        data = path.read_bytes()
        dataset = read_dicom(path, data=data)
    except (InvalidDicomError, OSError) as error:
        raise CaseError(f"{path}: not a readable DICOM file ({error})") from None
    modality = str(dataset.get("Modality", ""))
    if modality != "RTDOSE":
        raise CaseError(f"{path}: modality {modality or 'unknown'}, not an RT Dose (RTDOSE)")
    for keyword in ("DoseUnits", "DoseSummationType", "DoseGridScaling", "ImagePositionPatient",
                    "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
        if keyword not in dataset:
            raise CaseError(f"{path}: the RT Dose has no {keyword}")
    units = str(dataset.DoseUnits).upper()
    if units != "GY":
        raise CaseError(
            f"{path}: DoseUnits {units}: only absolute doses in Gy can be judged against a protocol's goals"
        )
    dose_type = str(dataset.get("DoseType", "PHYSICAL")).upper()
    if dose_type not in _DOSE_TYPES:
        raise CaseError(f"{path}: DoseType {dose_type} is not a dose to judge (PHYSICAL or EFFECTIVE)")
    grid, stored, notes = _grid_and_values(dataset, path)
    scaling = float(dataset.DoseGridScaling)
    if not (np.isfinite(scaling) and scaling > 0):
        raise CaseError(f"{path}: DoseGridScaling {scaling} is not a positive number")
    dose = stored.astype(np.float64) * scaling
    if dose.min() < 0:
        raise CaseError(f"{path}: the RT Dose has negative values (a dose difference?), not a planned dose")
    sha256 = hashlib.sha256(data).hexdigest()
    return _RtDoseFile(path, sha256, dataset, dose, grid, dose_type, str(dataset.DoseSummationType).upper(), notes)


def _grid_and_values(dataset: Dataset, path: Path) -> tuple[Grid, np.ndarray, list[str]]:
    """The grid in LPS with ascending axes, the stored values indexed [x, y, z] on it, and notes on
    frames placed within the plane tolerance (`_frame_z`, `_uniform_spacing`)."""
    signs = axis_signs(_numbers(dataset, "ImageOrientationPatient", 6, path), path, "dose grid")
    normal_sign = signs[0] * signs[1]  # the slice normal, row x column direction, along z
    if not dataset.get("NumberOfFrames"):
        # pydicom would then take as many frames as the bytes hold: a guess the check should not make.
        raise CaseError(
            f"{path}: the RT Dose has no NumberOfFrames, so how many planes its pixel data holds is not "
            "stated; export it again from the planning system"
        )
    frames, rows, columns = int(dataset.NumberOfFrames), int(dataset.Rows), int(dataset.Columns)
    _check_pixel_bytes(dataset, frames, rows, columns, path)
    try:
        pixels = np.asarray(dataset.pixel_array)
    except Exception as error:  # pydicom raises many types for undecodable pixel data
        raise undecodable(path, "RT Dose", dataset, error) from None
    if pixels.size != frames * rows * columns:  # compressed data, whose length says nothing beforehand
        raise CaseError(
            f"{path}: the pixel data decodes to {pixels.size} values, NumberOfFrames {frames} x Rows {rows} x "
            f"Columns {columns} makes {frames * rows * columns}; export it again from the planning system"
        )
    values = np.transpose(pixels.reshape(frames, rows, columns), (2, 1, 0))  # (columns = x, rows = y, frames = z)

    position = _numbers(dataset, "ImagePositionPatient", 3, path)
    row_spacing, column_spacing = _numbers(dataset, "PixelSpacing", 2, path, _positive)
    z, notes = _frame_z(position[2], normal_sign, _frame_offsets(dataset, frames, path), path)
    spacing_z, spacing_notes = _uniform_spacing(z, path)
    # Voxel centres along each axis in LPS, in storage order, then flipped to ascending.
    axes = [
        position[0] + signs[0] * column_spacing * np.arange(values.shape[0]),
        position[1] + signs[1] * row_spacing * np.arange(values.shape[1]),
        z,
    ]
    for axis in range(3):
        if len(axes[axis]) > 1 and axes[axis][1] < axes[axis][0]:
            values = np.flip(values, axis=axis)
            axes[axis] = axes[axis][::-1]
    try:
        grid = Grid(
            shape=values.shape,  # type: ignore[arg-type]
            spacing_mm=(column_spacing, row_spacing, spacing_z),
            origin_mm=(float(axes[0][0]), float(axes[1][0]), float(axes[2][0])),
        )
    except CaseError as error:  # a spacing beyond any dose grid's (metres for mm, ...): the file's, said so
        raise CaseError(f"{path}: the RT Dose's {error}") from None
    return grid, np.ascontiguousarray(values), [*notes, *spacing_notes]


def _numbers(
    dataset: Dataset, keyword: str, count: int, path: Path, rule: Callable[[np.ndarray], str | None] | None = None
) -> np.ndarray:
    """A geometry attribute's `count` values, each a finite number, and `rule` (what is wrong, or None) holding:
    a value that places no voxel is refused naming the file and the attribute."""
    stored = dataset[keyword].value
    stored = list(stored) if isinstance(stored, (list, tuple, MultiValue)) else [stored]
    shown = f"[{', '.join(str(value) for value in stored)}]"  # as written in the file
    try:
        values = np.array([float(value) for value in stored])
    except (TypeError, ValueError):
        values = np.array([])
    if len(values) != count or not np.all(np.isfinite(values)):
        raise CaseError(f"{path}: {keyword} {shown} is not {count} finite numbers")
    wrong = rule(values) if rule is not None else None
    if wrong is not None:
        raise CaseError(f"{path}: {keyword} {shown} {wrong}")
    return values


def _positive(spacing: np.ndarray) -> str | None:
    return None if np.all(spacing > 0) else "must be positive (mm between voxel centres)"


def _check_pixel_bytes(dataset: Dataset, frames: int, rows: int, columns: int, path: Path) -> None:
    """Uncompressed pixel data must hold exactly what its attributes state (one pad byte aside). pydicom
    decodes a longer buffer without a word, and the planes would then be cut from it at the wrong places."""
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    if "PixelData" not in dataset or (syntax is not None and syntax.is_encapsulated):
        return  # nothing to measure: pydicom's decoding says what is wrong
    bits = int(dataset.get("BitsAllocated", 0))
    stated = frames * rows * columns * bits // 8
    held = len(dataset.PixelData)
    if held in (stated, stated + stated % 2):
        return
    plane = rows * columns * bits // 8
    planes = f" ({held // plane} planes of Rows x Columns at BitsAllocated {bits})" if plane and held % plane == 0 else ""
    raise CaseError(
        f"{path}: the pixel data holds {held} bytes{planes}, but NumberOfFrames {frames} x Rows {rows} x Columns "
        f"{columns} x BitsAllocated {bits} / 8 makes {stated}: one of them is wrong; export it again from the "
        "planning system"
    )


def _frame_offsets(dataset: Dataset, frames: int, path: Path) -> np.ndarray:
    """GridFrameOffsetVector's values, one per frame (what they mean: `_frame_z`)."""
    if frames == 1 and "GridFrameOffsetVector" not in dataset:
        return np.zeros(1)
    if "GridFrameOffsetVector" not in dataset:
        raise CaseError(f"{path}: {frames} frames but no GridFrameOffsetVector to place them")
    offsets = np.array([float(v) for v in np.atleast_1d(dataset.GridFrameOffsetVector)])
    if len(offsets) != frames:
        raise CaseError(f"{path}: GridFrameOffsetVector has {len(offsets)} values for {frames} frames")
    if not np.all(np.isfinite(offsets)):
        bad = int(np.flatnonzero(~np.isfinite(offsets))[0])
        raise CaseError(f"{path}: GridFrameOffsetVector value {bad + 1} of {frames} is {offsets[bad]:g}, not a number")
    return offsets


def _frame_z(first_z_mm: float, normal_sign: float, offsets: np.ndarray, path: Path) -> tuple[np.ndarray, list[str]]:
    """Each frame's z in mm, and a note when the file writes its first plane twice at slightly different z.

    DICOM (PS3.3 C.8.8.3.2) reads GridFrameOffsetVector as offsets along the slice normal from the
    first frame when its first value is 0, and as absolute z only when its first value is
    ImagePositionPatient's z. The two are one plane when they lie within the plane tolerance
    (PLANE_TOLERANCE_FRACTION of the frame spacing: written at another precision), as a contour is
    on its CT slice, and ImagePositionPatient places it. A first value beyond it puts the first plane
    at two places, and which the exporting system meant cannot be told: placed by either field, the
    dose would be shifted along z without a word."""
    if abs(offsets[0]) <= POSITION_TOLERANCE_MM:
        return first_z_mm + normal_sign * offsets, []
    spacing = abs(float(offsets[-1] - offsets[0])) / (len(offsets) - 1) if len(offsets) > 1 else 0.0
    tolerance = max(POSITION_TOLERANCE_MM, plane_tolerance_mm(spacing))
    apart = abs(offsets[0] - first_z_mm)
    within = f"{plane_tolerance_text(spacing)} of the frames" if spacing else f"{POSITION_TOLERANCE_MM:g} mm"
    if apart > tolerance:
        raise CaseError(
            f"{path}: GridFrameOffsetVector starts at {offsets[0]:g} mm and ImagePositionPatient's z is "
            f"{first_z_mm:g} mm ({apart:.3g} mm apart, beyond {within}): DICOM reads the offsets as absolute z only "
            "when the two agree (and as offsets from the first frame when the first is 0), so the file places its "
            "first dose plane at two z; export it again from the planning system"
        )
    if apart <= POSITION_TOLERANCE_MM:
        return offsets, []
    # One plane written at two precisions: ImagePositionPatient places it, as the CT's places its slices.
    return first_z_mm + (offsets - offsets[0]), [
        f"{path.name}: GridFrameOffsetVector starts at {offsets[0]:g} mm, ImagePositionPatient's z is {first_z_mm:g} mm: "
        f"{apart:.3g} mm apart, within {within}, so one plane, placed at ImagePositionPatient's z"
    ]


def _uniform_spacing(z: np.ndarray, path: Path) -> tuple[float, list[str]]:
    """The frame spacing, and a note when frames were placed on uniform planes they lie a little off.

    The grid's planes are uniform from the first frame to the last; each frame must lie on its plane
    within the plane tolerance (PLANE_TOLERANCE_FRACTION of the spacing: offsets written at another
    precision), as a contour must lie on its CT slice. A single frame has no spacing to give."""
    if len(z) == 1:
        raise CaseError(f"{path}: a single-frame RT Dose (one plane) has no volume to judge DVH goals on")
    gaps = np.abs(np.diff(z))
    spacing = abs(float(z[-1] - z[0])) / (len(z) - 1)
    planes = z[0] + np.sign(z[-1] - z[0]) * spacing * np.arange(len(z))
    off = np.abs(z - planes)
    worst = int(np.argmax(off))
    if gaps.min() < POSITION_TOLERANCE_MM or off[worst] > max(10 * POSITION_TOLERANCE_MM, plane_tolerance_mm(spacing)):
        raise CaseError(
            f"{path}: RT Dose frames are not uniformly spaced (gaps from {gaps.min():g} to {gaps.max():g} mm): frame "
            f"{worst + 1} at z = {z[worst]:g} mm lies {off[worst]:.3g} mm from its plane of {spacing:g} mm frames, "
            f"beyond {plane_tolerance_text(spacing)}; resample the dose to uniform planes first"
        )
    if off[worst] <= 10 * POSITION_TOLERANCE_MM:
        return spacing, []
    return spacing, [
        f"{path.name}: frames lie up to {off[worst]:.3g} mm from uniform planes of {spacing:g} mm (frame {worst + 1} at "
        f"z = {z[worst]:g} mm), within {plane_tolerance_text(spacing)}: read on the uniform planes"
    ]
