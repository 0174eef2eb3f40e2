"""The plan matRad optimized (a workspace's resultGUI.physicalDose), read so that specc can check it.

matRad keeps its optimized dose in `resultGUI.physicalDose`: a cube on the CT grid
([Ny Nx Nz], like ct.cube), in Gy **per fraction** (its dij is per fraction; matRad divides
its objectives' doses by pln.numOfFractions). It is read on the CT's world axes exactly as the
matRad importer places the case (`ct_axes`), multiplied by the protocol's fractions, and the
workspace's own fractions, when it states them, must be the protocol's.

matRad measures its DVHs and quality indicators on that CT grid with each structure's CT
voxels (cst{i,4}), not on the coarser dose grid it optimizes on (matRad's default: CT 2 mm,
dose 4 mm), where `specc import matrad` places the case. `read_matrad_plan` therefore also
builds the case a check measures on: the workspace's CT grid and its cst{i,4} structures, so
a check's values are matRad's own.

A case given with the workspace names the check, and its case id is what `specc compare` and
cohorts pair the check with specc's plan of that case on; so a case imported from a matRad
workspace must be of this one (`_case_of_workspace`: its structures are cst rows whose cst{i,4}
voxels, resampled onto its grid as the importer does, are its masks). One from elsewhere (PortPy,
DICOM, a phantom) is compared where it can be (`_case_from_elsewhere`): its structure names with the
cst's, its grid with the workspace's CT in the patient frame (mm); one sharing no structure name, or
no voxel of space, is refused, one matching in part is a warning. File names are no test: two
workspaces of one patient (before and after optimizing) differ in name only, two patients' may not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from specc.case.importers.external_dose import ExternalDose
from specc.case.importers.mat_file import load_mat
from specc.case.importers.matrad import (
    CT_DIMS, CT_FIRST_CENTRE, CT_RESOLUTION, cst_names, ct_axes, ct_grid_record, cst_voxels, field_of, int_vector,
    plan_fractions, uniform_step, visible_color,
)
from specc.case.importers.report import build_case
from specc.case.model import MIN_HU, Beamlets, Case, CaseMetadata, Grid, Structure
from specc.errors import CaseError
from specc.hashing import file_sha256

DOSE_FIELD = "physicalDose"
_FALLBACK_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c")


def is_matrad_workspace(path: str | Path) -> bool:
    """A dose file named as a matRad workspace (.mat) rather than a DICOM RT Dose."""
    return Path(path).suffix.lower() == ".mat"


@dataclass(frozen=True)
class MatradPlan:
    """matRad's plan as matRad measures it: resultGUI's total dose and the case of the workspace's
    CT grid with its cst{i,4} structures (the dose's own grid: nothing is interpolated)."""

    dose: ExternalDose  # its notes: how the dose was read and whose case names it
    case: Case
    left_out: list[str]  # cst rows that are no structure of the case, and why
    # What a check measuring on `case` (the CT grid, cst{i,4}) says of it; a check on another case says otherwise.
    measured_on_ct: str
    # What a signer must see before the goals: a case from elsewhere that matches the workspace only in part
    # (`_case_from_elsewhere`)
    warnings: list[str] = field(default_factory=list)


def read_matrad_dose(path: str | Path, fractions: int | None) -> ExternalDose:
    """resultGUI.physicalDose of a matRad workspace as the total dose of `fractions` fractions
    (None: the workspace's own `pln.numOfFractions`, which must then be stated: a prior course's)."""
    path = Path(path)
    return _result_dose(load_mat(path), path, fractions)


def read_matrad_plan(
    path: str | Path, fractions: int, named_by: Case | None = None, case_file: str | Path | None = None
) -> MatradPlan:
    """resultGUI.physicalDose as `read_matrad_dose` reads it, with the case matRad measures it on:
    the CT grid and the cst{i,4} voxels of every cst row, named after `named_by` (else the file's stem).

    `named_by` (read from `case_file`, which messages name) must be a case of this workspace when it was
    imported from a matRad workspace, else it is refused saying what differs; from elsewhere, it must share
    structure names and space with the workspace, and a partial match is a warning (`_case_of_workspace`)."""
    path = Path(path)
    workspace = load_mat(path)
    dose = _result_dose(workspace, path, fractions)
    case_notes, warnings = (
        _case_of_workspace(named_by, case_file, workspace, path, dose.grid) if named_by is not None else ([], [])
    )
    case_id = named_by.case_id if named_by is not None else None
    structures, left_out = _ct_structures(workspace.get("cst"), dose.grid, str(path))
    voxel_indices = np.zeros(dose.grid.n_voxels, dtype=bool)
    for structure in structures.values():
        voxel_indices |= structure.mask.ravel()
    voxel_indices = np.flatnonzero(voxel_indices)
    case = build_case(
        str(path),
        case_id=case_id or path.stem,
        grid=dose.grid,
        voxel_indices=voxel_indices,
        influence=sp.csr_matrix((len(voxel_indices), 0), dtype=np.float32),
        beams=[],
        beamlets=Beamlets(beam_id=[], x_mm=[], y_mm=[], width_mm=[], height_mm=[]),
        structures=structures,
        ct_hu=_ct_numbers(workspace["ct"], dose.grid),
        metadata=CaseMetadata(
            source=f"matRad workspace {path.name}: CT grid and cst{{i,4}} structures",
            dose_engine=f"none: the dose is resultGUI.{DOSE_FIELD} of {path.name}",
        ),
    )
    shape, spacing = dose.grid.shape, dose.grid.spacing_mm
    note = (
        f"{path.name}: measured as matRad measures its DVHs: on the CT grid ({' × '.join(map(str, shape))} voxels of "
        f"{' × '.join(f'{s:g}' for s in spacing)} mm, resultGUI's own: nothing interpolated) with each structure's "
        "CT voxels, cst{i,4}"
    )
    return MatradPlan(dose=replace(dose, notes=[*dose.notes, *case_notes]), case=case, left_out=left_out,
                      measured_on_ct=note, warnings=warnings)


def _result_dose(workspace: dict[str, Any], path: Path, fractions: int | None) -> ExternalDose:
    result = workspace.get("resultGUI")
    if not isinstance(result, dict) or DOSE_FIELD not in result:
        raise CaseError(
            f"{path}: no resultGUI.{DOSE_FIELD}: optimize the plan in matRad and save resultGUI with the workspace "
            "(save(file, 'ct', 'cst', 'dij', 'pln', 'resultGUI', '-v7.3'))"
        )
    ct, dij = workspace.get("ct"), workspace.get("dij", {})
    if not isinstance(ct, dict) or "cubeDim" not in ct:
        raise CaseError(f"{path}: no ct.cubeDim: the CT grid resultGUI.{DOSE_FIELD} lies on is unknown")
    dims = tuple(int(v) for v in np.asarray(ct["cubeDim"]).ravel())
    cube = np.asarray(result[DOSE_FIELD], dtype=np.float64)
    if cube.shape != dims:
        raise CaseError(
            f"{path}: resultGUI.{DOSE_FIELD} has shape {list(cube.shape)}, ct.cubeDim is {list(dims)} "
            "(matRad stores the dose on the CT grid)"
        )
    if not np.isfinite(cube).all() or cube.min() < 0:
        raise CaseError(f"{path}: resultGUI.{DOSE_FIELD} has negative or non-finite values")
    stated = plan_fractions(workspace, dij if isinstance(dij, dict) else {}, str(path))
    if fractions is None:
        if stated is None:
            raise CaseError(
                f"{path}: the workspace states no pln.numOfFractions, so the total of its plan (resultGUI is one "
                "fraction) is unknown"
            )
        fractions = stated
    if stated is not None and stated != fractions:
        raise CaseError(
            f"{path}: the matRad plan has {stated} fractions (pln.numOfFractions), the protocol prescribes "
            f"{fractions}: the plan does not implement this protocol's fractionation"
        )
    notes: list[str] = []
    axes = ct_axes(ct, dij if isinstance(dij, dict) else {}, dims, str(path), notes)
    grid = Grid(
        shape=(dims[1], dims[0], dims[2]),
        spacing_mm=tuple(uniform_step(axis, str(path), f"CT {label}") for axis, label in zip(axes, "xyz")),
        origin_mm=tuple(float(axis[0]) for axis in axes),
    )
    notes.append(
        f"{path.name}: matRad's resultGUI.{DOSE_FIELD} is the dose of one fraction: multiplied by "
        f"{fractions} fractions" + ("" if stated is not None else " (the protocol's; the workspace states none)")
    )
    return ExternalDose(
        format="matRad resultGUI",
        dose_gy=np.transpose(cube, (1, 0, 2)) * fractions,  # [Ny Nx Nz] -> [x, y, z]
        grid=grid,
        path=path,
        sha256=file_sha256(path),
        dose_type="PHYSICAL",
        summation=f"resultGUI.{DOSE_FIELD} (one fraction)",
        fractions_scaled=fractions,
        attributes={"Manufacturer": "matRad", "workspace": path.name},
        referenced_plan_uid=None,
        notes=notes,
    )


def _ct_structures(cst: Any, grid: Grid, source: str) -> tuple[dict[str, Structure], list[str]]:
    """Every cst row as a structure on the CT grid (`grid`, axes x, y, z): its cst{i,4} voxels as
    they are, named as `specc import matrad` names them (`cst_names`). A row without voxels is left out,
    and said so (matRad's DVH of it is empty too)."""
    ct_dims = (grid.shape[1], grid.shape[0], grid.shape[2])  # matRad's [Ny Nx Nz]
    structures: dict[str, Structure] = {}
    left_out: list[str] = []
    for row, name in cst_names(cst, (), source).kept.items():
        if _voxel_count(cst[row, 3]) == 0:
            left_out.append(f"{name}: cst{{{row + 1},4}} holds no voxel: left out")
            continue
        flat = np.zeros(grid.n_voxels, dtype=bool)
        flat[cst_voxels(cst, row, name, grid.n_voxels, source)] = True
        mask = np.ascontiguousarray(flat.reshape(ct_dims, order="F").transpose(1, 0, 2))  # [y, x, z] -> [x, y, z]
        color = visible_color(cst, row) or _FALLBACK_COLORS[len(structures) % len(_FALLBACK_COLORS)]
        structures[name] = Structure(name=name, mask=mask, color=color)
    if not structures:
        raise CaseError(f"{source}: cst holds no structure with voxels")
    return structures, left_out


def _voxel_count(voxels: Any) -> int:
    scenarios = list(voxels.ravel()) if isinstance(voxels, np.ndarray) and voxels.dtype == object else [voxels]
    return sum(np.asarray(scenario).size for scenario in scenarios)


def _ct_numbers(ct: dict[str, Any], grid: Grid) -> np.ndarray | None:
    """ct.cubeHU (one CT scenario) on the CT grid, for the report's images (padding below air shown as
    air); None without one."""
    cube = ct.get("cubeHU")
    if isinstance(cube, np.ndarray) and cube.dtype == object:
        cells = [cell for cell in cube.ravel() if isinstance(cell, np.ndarray) and cell.size]
        cube = cells[0] if len(cells) == 1 else None
    if cube is None or np.shape(cube) != (grid.shape[1], grid.shape[0], grid.shape[2]):
        return None
    hu = np.asarray(cube, dtype=np.float32)
    return np.transpose(np.maximum(hu, MIN_HU), (1, 0, 2)) if np.isfinite(hu).all() else None


# --- the case named with the workspace ----------------------------------------------------------------
# How far apart two coordinates may be and still be one (the importer's axis tolerance): a dose-grid centre
# equally near two CT centres (a 5 mm grid on a 2 mm CT) may be resampled from either, as rounding falls.
_SAME_MM = 1e-3
_LISTED = 6  # differing structures named in a refusal; the rest are counted


def _case_of_workspace(
    case: Case, case_file: str | Path | None, workspace: dict[str, Any], path: Path, ct_grid: Grid
) -> tuple[list[str], list[str]]:
    """Notes that `case` is of the workspace at `path` (or how far that could be checked) and warnings of a
    partial match; a case imported from another matRad workspace is refused, naming both files and what differs.

    A case from `specc import matrad` holds the workspace's structures (cst names, less any excluded) on
    its grid, each the nearest CT voxel's cst{i,4} membership (`cst_structures`); the same resampling of
    this workspace's cst must give its masks. That holds for the workspace it was imported from, before
    and after optimizing and under any file name, and fails for another patient, another CT (dimensions,
    resolution or position) or structures renamed or contoured again. A case from elsewhere is compared
    where it can be (`_case_from_elsewhere`); `ct_grid` is the workspace's CT grid in the patient frame."""
    named = f"the case {case.case_id!r}" + (f" ({case_file})" if case_file is not None else "")
    extra = case.metadata.extra
    if extra.get("import.format") != "matrad" and not case.metadata.source.startswith("matRad workspace"):
        return _case_from_elsewhere(case, named, workspace, path, ct_grid)
    source = str(path)
    imported_from = extra.get("import.source", case.metadata.source)
    differences = _differences(case, workspace, source)
    if differences:
        raise CaseError(
            f"{named}, imported from {imported_from}, is not a case of the workspace {path}: "
            + "; ".join(differences)
            + f". Give the case imported from this workspace (specc import matrad {path.name}), or none: the "
            "check is then named after the workspace"
        )
    ct = "its CT grid is the workspace's and " if CT_DIMS in extra else "(it records no CT grid to compare) "
    return [
        f"{named}, imported from {imported_from}, is a case of {path.name}: {ct}its {len(case.structures)} "
        "structures are cst rows of the workspace, their masks its cst{i,4} voxels resampled onto the case's grid"
    ], []


def _case_from_elsewhere(
    case: Case, named: str, workspace: dict[str, Any], path: Path, ct_grid: Grid
) -> tuple[list[str], list[str]]:
    """Notes and warnings on a case not imported from a matRad workspace (PortPy, DICOM, a phantom), which the
    check is filed under though the dose and structures measured are the workspace's.

    Nothing of such a case says which workspace it is of, but two things can be compared: its structure names
    with the cst's (as for a case from a workspace: `_not_in_cst`), and whether its grid lies in the space of
    the workspace's CT, both in mm in the patient frame. A case sharing no structure name, or no voxel of space,
    is another patient's (or placed in another frame): refused, naming both files and what differs. One that
    shares some names, or reaches beyond the CT, is a warning naming what differs: the check would otherwise be
    filed under a patient whose structures and grid it was not measured on, with only a note to say so."""
    extra = case.metadata.extra
    came_from = case.metadata.source + (f" (imported from {extra['import.source']})" if "import.source" in extra else "")
    rows = _cst_rows(workspace, str(path))
    missing = _not_in_cst(case, rows)
    shared = [name for name in case.structures if name not in missing]
    cst_only = [name for name in rows if name not in shared]
    case_box, ct_box = _box_mm(case.grid), _box_mm(ct_grid)
    apart = [axis for axis, (low, high), (ct_low, ct_high) in zip("xyz", case_box, ct_box)
             if min(high, ct_high) - max(low, ct_low) <= _SAME_MM]
    # a grid around the contours (`box_grid`) may reach up to one of its voxels beyond the CT it was made on
    beyond = [axis for axis, (low, high), (ct_low, ct_high), step in zip("xyz", case_box, ct_box, case.grid.spacing_mm)
              if low < ct_low - step or high > ct_high + step]
    grids = f"the case's grid spans {_box_text(case_box)}, the workspace's CT {_box_text(ct_box)}"
    if not shared or apart:
        reasons = []
        if not shared:
            reasons.append(
                f"no structure name in common (the case's {_quoted(case.structures)}; the workspace's cst "
                f"{_quoted(rows)})"
            )
        if apart:
            reasons.append(f"no space in common in the patient frame: {grids}, apart along {', '.join(apart)}")
        raise CaseError(
            f"{named} came from {came_from}, not from a matRad workspace, and is not of the patient of the "
            f"workspace {path}: " + "; ".join(reasons) + ". Check the workspace without --case (the check is "
            f"then filed under its name, {path.stem!r}), or give the case of its patient"
        )
    notes = [
        f"{named} came from {came_from}, not from a matRad workspace: whether it is the patient of {path.name} "
        f"could not be checked; the check is filed under its case id {case.case_id!r}, which specc compare and "
        "cohorts pair on",
        f"{named} and {path.name} compared by what they share: the structures {_quoted(shared)} by name, and the "
        f"space of their grids in mm ({grids})",
    ]
    differences = []
    if missing:
        differences.append(f"its structures {_quoted(missing)} are no cst row of the workspace")
    if cst_only:
        differences.append(f"the workspace's cst rows {_quoted(cst_only)} are no structure of the case")
    if beyond:
        differences.append(f"its grid reaches beyond the workspace's CT along {', '.join(beyond)} ({grids})")
    if not differences:
        return notes, []
    return notes, [
        f"{named}, from {came_from}, matches the matRad workspace {path.name} only in part: " + "; ".join(differences)
        + f". The check is filed under {case.case_id!r} but measured on the workspace's dose and cst structures: "
        "make sure both are of one patient, or check the workspace without --case"
    ]


def _cst_rows(workspace: dict[str, Any], source: str) -> dict[str, int]:
    """The workspace's structures by the name `specc import matrad` gives them (`cst_names`), each its cst row."""
    return {name: row for row, name in cst_names(workspace.get("cst"), (), source).kept.items()}


def _not_in_cst(case: Case, rows: dict[str, int]) -> list[str]:
    """The case's structures that no cst row of the workspace names (`_cst_rows`): named as the importer names
    them, a structure of the workspace's patient is a cst row, whatever system the case came from."""
    return [name for name in case.structures if name not in rows]


def _box_mm(grid: Grid) -> list[tuple[float, float]]:
    """The space a grid's voxels fill, per axis (x, y, z): from the first voxel's outer face to the last's, in mm."""
    return [
        (origin - step / 2, origin + (count - 1) * step + step / 2)
        for origin, step, count in zip(grid.origin_mm, grid.spacing_mm, grid.shape)
    ]


def _box_text(box: list[tuple[float, float]]) -> str:
    return ", ".join(f"{axis} {low:g} to {high:g}" for axis, (low, high) in zip("xyz", box)) + " mm"


def _quoted(names: Any) -> str:
    return ", ".join(map(repr, names))


def _differences(case: Case, workspace: dict[str, Any], source: str) -> list[str]:
    """What of `case` the workspace does not give: the CT it recorded at import (`ct_grid_record`), structures
    its cst lacks, masks its cst{i,4} voxels do not make."""
    cst, ct, dij = workspace.get("cst"), workspace["ct"], workspace.get("dij")
    rows = _cst_rows(workspace, source)
    missing = _not_in_cst(case, rows)
    differences = []
    if missing:
        differences.append(
            f"its structures {_quoted(missing)} are no cst row of the workspace (whose cst names {_quoted(rows)})"
        )
    dims = int_vector(field_of(ct, "cubeDim", source, "ct"), 3, source, "ct.cubeDim")
    axes = ct_axes(ct, dij if isinstance(dij, dict) else {}, dims, source, [])
    ct_grid = ct_grid_record(dims, axes)
    if all(key in case.metadata.extra for key in ct_grid) and not _same_ct(case.metadata.extra, ct_grid):
        differences.append(
            f"the CT it was imported from ({_ct_text(case.metadata.extra)}) is not the workspace's ({_ct_text(ct_grid)})"
        )
    nearest = [_nearest_ct(ct_axis, case_axis) for ct_axis, case_axis in zip(axes, case.grid.axes_mm())]
    unlike = []
    for name, structure in case.structures.items():
        if name not in rows:
            continue
        ct_mask = np.zeros(int(np.prod(dims)), dtype=bool)
        ct_mask[cst_voxels(cst, rows[name], name, ct_mask.size, source)] = True
        may, must = _on_case_grid(ct_mask.reshape(dims, order="F").transpose(1, 0, 2), nearest)
        wrong = int(np.count_nonzero(structure.mask & ~may) + np.count_nonzero(~structure.mask & must))
        if wrong:
            from_cst = int(np.count_nonzero(must))
            unlike.append(
                f"{name} ({structure.n_voxels} voxels in the case, {from_cst} from cst{{{rows[name] + 1},4}}, "
                f"{wrong} differing)"
            )
    if unlike:
        more = f" and {len(unlike) - _LISTED} more" if len(unlike) > _LISTED else ""
        differences.append(
            f"the workspace's cst{{i,4}} voxels, resampled onto the case's grid ({_grid_text(case.grid)}, first "
            f"centre {_mm_text(case.grid.origin_mm)} mm) from its CT ({_ct_text(ct_grid)}) as specc import matrad "
            "does, are not the case's masks: " + ", ".join(unlike[:_LISTED]) + more
        )
    return differences


def _same_ct(recorded: dict[str, str], workspace: dict[str, str]) -> bool:
    """The CT grid a case recorded at import is the workspace's: the same cubeDim, voxel size and first centre
    (within `_SAME_MM`)."""
    if recorded[CT_DIMS].split() != workspace[CT_DIMS].split():
        return False
    try:
        return all(
            np.allclose([float(v) for v in recorded[key].split()], [float(v) for v in workspace[key].split()],
                        rtol=0.0, atol=_SAME_MM)
            for key in (CT_RESOLUTION, CT_FIRST_CENTRE)
        )
    except ValueError:  # not numbers, or not three of them: not a record of this CT
        return False


def _ct_text(record: dict[str, str]) -> str:
    """A CT grid as the case records it (`ct_grid_record`), in words: x × y × z voxels of mm, first centre."""
    ny, nx, nz = record[CT_DIMS].split()
    resolution = _mm_text(float(value) for value in record[CT_RESOLUTION].split())
    first = _mm_text(float(value) for value in record[CT_FIRST_CENTRE].split())
    return f"{nx} × {ny} × {nz} voxels of {resolution} mm, first centre {first} mm"


def _nearest_ct(ct_axis: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each coordinate of `axis`, the CT index the importer may have resampled it from, twice: the
    first and the last of those within `_SAME_MM` of the nearest (the same index but where two are equally
    near), -1 (no voxel) where it lies beyond half a CT voxel outside the CT, in the first where it may."""
    distance = np.abs(axis[:, None] - ct_axis[None, :])
    near = distance <= distance.min(axis=1, keepdims=True) + _SAME_MM
    first = near.argmax(axis=1)
    last = len(ct_axis) - 1 - near[:, ::-1].argmax(axis=1)
    half = abs(float(ct_axis[1] - ct_axis[0])) / 2 if len(ct_axis) > 1 else 0.5
    # the importer allows _SAME_MM beyond half a voxel; rounding may move a coordinate as much either way
    inside = np.minimum(axis - (ct_axis[0] - half), (ct_axis[-1] + half) - axis)
    return np.where(inside < 0, -1, first), np.where(inside < -2 * _SAME_MM, -1, last)


def _on_case_grid(ct_mask: np.ndarray, nearest: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """A CT mask ([x, y, z]) on the case grid, nearest neighbour: where some choice among equally near CT
    voxels puts it (`may`), and where every choice does (`must`). Index -1 reads a plane of no voxel."""
    padded = np.pad(ct_mask, [(0, 1)] * 3)  # index -1: the added False plane
    may = must = None
    for choice in np.ndindex(2, 2, 2):
        on_grid = padded[np.ix_(*(nearest[axis][pick] for axis, pick in enumerate(choice)))]
        may = on_grid if may is None else may | on_grid
        must = on_grid if must is None else must & on_grid
    return may, must


def _grid_text(grid: Grid) -> str:
    return f"{' × '.join(map(str, grid.shape))} voxels of {_mm_text(grid.spacing_mm)} mm"


def _mm_text(values: Any) -> str:
    return ", ".join(f"{value:g}" for value in values)
