"""A DICOM CT series with its RT Structure Set, turned into a specc case.

DICOM holds images and contours but no influence matrix, so the case gets one from the
built-in pencil-beam engine: the CT is converted to relative electron density with an HU
table (hu_density.py) and the rays cross it at its own resolution over its whole extent (so
tissue and couch outside the contours count), the case's /density is the CT resampled onto
the dose grid, and the contours are rasterized onto that grid (rule in rtstruct.py). The patient, study
and Frame of Reference identifiers are kept under `dicom.*` in the case metadata so the RT
Dose export lands in the same study. docs/formats/dicom.md has the details.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from specc.case.engine import PencilBeamModel
from specc.case.importers.engine_case import box_grid, engine_influence, grid_spacing, scanned_density, traced_note
from specc.case.importers.dicom_ct import DicomFolder, read_dicom_folder
from specc.case.importers.hu_density import (
    DEFAULT_HU_TABLE, HU_TABLE_KEY, beyond_table_notes, hu_table_record, hu_table_said,
    hu_to_relative_electron_density,
)
from specc.case.importers.report import ImportedCase, build_case, record_in_metadata
from specc.case.importers.rtstruct import RoiContours, contour_box, off_slice_notes, rasterize, read_structure_set
from specc.case.model import CaseMetadata, Grid, Structure
from specc.errors import CaseError

# ROI interpreted types that make an ROI a target for aiming the beamlets, in order of preference.
_TARGET_TYPES = ("PTV", "CTV", "GTV")


def import_dicom(
    folder: str | Path,
    *,
    beams: int | Sequence[float] = 7,
    beamlet_mm: float = 5.0,
    grid_mm: float | Sequence[float] = 3.0,
    targets: Sequence[str] = (),
    exclude: Sequence[str] = (),
    hu_table: tuple[tuple[float, float], ...] = DEFAULT_HU_TABLE,
    case_id: str | None = None,
    model: PencilBeamModel | None = None,
) -> ImportedCase:
    """Import a CT + RTSTRUCT folder and compute its influence matrix.

    `beams` is a number of equispaced coplanar beams or a list of gantry angles (deg);
    `grid_mm` the dose-grid spacing (one value for x and y with z on the CT slices, or x, y, z);
    `targets` the ROIs the beamlets must cover (default: ROIs typed PTV, else CTV, else GTV).
    """
    folder = Path(folder)
    dicom = read_dicom_folder(folder)
    source = str(dicom.structure_set_file)
    rois, without_volume = read_structure_set(dicom.structure_set, dicom.ct, source)
    not_imported = [f"ROI {item}" for item in without_volume]
    not_imported += [f"file {item}" for item in dicom.unused]
    unknown = sorted(set(exclude) - {roi.name for roi in rois})
    if unknown:
        raise CaseError(f"{source}: --exclude {', '.join(unknown)}: no ROI with closed contours of that name")
    not_imported += [f"ROI {name}: excluded on request" for name in exclude]
    rois = [roi for roi in rois if roi.name not in exclude]
    if not rois:
        raise CaseError(f"{source}: no ROI with closed planar contours to import")

    grid = _dose_grid(dicom, rois, grid_mm)
    x_mm, y_mm, z_mm = grid.axes_mm()
    structures: dict[str, Structure] = {}
    for roi in rois:
        mask = rasterize(roi, x_mm, y_mm, z_mm, dicom.ct.spacing_mm[2])
        if not mask.any():
            raise CaseError(
                f"{source}: ROI '{roi.name}' covers no voxel centre of the {grid.spacing_mm} mm dose grid; "
                "use a finer --grid or leave it out with --exclude"
            )
        structures[roi.name] = Structure(name=roi.name, mask=mask, color=roi.color)

    target_names = _target_names(dicom, rois, targets, source)
    traced = scanned_density(hu_to_relative_electron_density(dicom.ct.hu, hu_table), dicom.ct.grid, grid)
    density = hu_to_relative_electron_density(dicom.ct.on_grid(grid), hu_table)
    model = model or PencilBeamModel()
    computed = engine_influence(grid, structures, traced, target_names, beams, beamlet_mm, model)
    influence, beam_list = computed.influence, computed.beams

    extra = {f"dicom.{key}": value for key, value in dicom.ct.identifiers.items()}
    extra["dicom.StructureSetSOPInstanceUID"] = str(dicom.structure_set.get("SOPInstanceUID", ""))
    extra[HU_TABLE_KEY] = hu_table_record(hu_table)
    notes = [
        computed.note,
        f"CT converted to relative electron density with {hu_table_said(hu_table)}",
        *beyond_table_notes(dicom.ct.hu, hu_table),
        traced_note(traced, "the CT"),
        "the case's /density is the CT resampled to the dose grid (trilinear), for reports; the influence matrix "
        "used the CT itself",
        "contours rasterized by voxel centre inside the polygon, per plane (docs/formats/dicom.md)",
        *off_slice_notes(rois, dicom.ct),
        *dicom.notes,
    ]
    position = dicom.ct.identifiers.get("PatientPosition", "HFS")
    if position != "HFS":
        notes.append(
            f"the CT's patient position is {position}: beam directions are placed as gantry angles for a "
            "head-first supine patient, so the dose is right for those directions but the angles are not "
            "a machine's; no RT Plan can be exported from plans on this case"
        )
    case = build_case(
        source,
        case_id=case_id or str(dicom.ct.identifiers.get("PatientID", folder.name)),
        grid=grid,
        voxel_indices=influence.voxel_indices,
        influence=influence.matrix,
        beams=beam_list,
        beamlets=influence.beamlets,
        structures=structures,
        density=density,
        metadata=CaseMetadata(source=f"DICOM CT + RTSTRUCT {folder.name}", dose_engine=model.label, extra=extra),
    )
    imported = ImportedCase(case=case, format="dicom", source=str(folder), notes=notes, not_imported=not_imported)
    record_in_metadata(imported)
    return imported


def _dose_grid(dicom: DicomFolder, rois: list[RoiContours], grid_mm: float | Sequence[float]) -> Grid:
    """The box around all contours, its voxel centres on the CT's: x and y every `grid_mm` from a CT
    pixel centre, z planes from the lowest contoured slice (on the CT slices when the z spacing is
    the CT's). Centred on the box instead, contours drawn between CT voxel centres would run through
    dose-grid centres, and a round trip through DICOM would change the structures."""
    spacing = grid_spacing(grid_mm, dicom.ct.spacing_mm[2])
    return box_grid(*contour_box(rois), spacing, anchor_xy_mm=dicom.ct.origin_mm[:2])


def _target_names(dicom: DicomFolder, rois: list[RoiContours], targets: Sequence[str], source: str) -> list[str]:
    names = [roi.name for roi in rois]
    if targets:
        unknown = [name for name in targets if name not in names]
        if unknown:
            raise CaseError(f"{source}: --target {', '.join(unknown)}: no such ROI (ROIs: {', '.join(names)})")
        return list(targets)
    types = {
        int(item.ReferencedROINumber): str(item.get("RTROIInterpretedType", "")).upper()
        for item in dicom.structure_set.get("RTROIObservationsSequence", [])
    }
    for kind in _TARGET_TYPES:
        found = [roi.name for roi in rois if types.get(roi.number) == kind]
        if found:
            return found
    raise CaseError(
        f"{source}: no ROI is typed PTV, CTV or GTV; name the target(s) the beams must cover with --target"
    )
