"""matRad / pyRadPlan workspaces (.mat with ct, cst, dij and optionally stf, pln) as specc cases.

matRad keeps structures on the CT grid (cst{i,4}{1}: 1-based, column-major linear indices
into a [Ny Nx Nz] cube) and the influence matrix on the dose grid (dij.physicalDose{1}: one
row per dose-grid voxel in the same column-major order, Gy per unit weight per fraction).
The specc case lives on the dose grid, so masks are resampled the way matRad itself does
before optimizing (matRad_resizeCstToGrid: nearest-neighbour interpolation of the binary
CT-grid mask at the dose-grid voxel centres, zero outside the CT). docs/formats/matrad.md
lists what is mapped and what is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from specc.case.importers.mat_file import load_mat
from specc.case.importers.report import ImportedCase, build_case, record_in_metadata
from specc.case.model import BEAMLET_POSITIONS, Beam, Beamlets, CaseMetadata, Grid, Structure
from specc.errors import CaseError, SpeccError

_AXIS_TOLERANCE_MM = 1e-3
_FALLBACK_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c")


def import_matrad(
    path: str | Path,
    *,
    exclude: Sequence[str] = (),
    case_id: str | None = None,
    engine: dict[str, Any] | None = None,
) -> ImportedCase:
    """Read a matRad workspace; `exclude` names cst structures to leave out on purpose.

    A workspace without a dij (ct and cst only, as matRad's phantom files) gets its influence
    matrix from specc's engine (`matrad_geometry.py`), with `engine` holding that import's
    options (beams, beamlet_mm, grid_mm, targets, hu_table); with a dij they are an error.
    """
    path = Path(path)
    workspace = load_mat(path)
    missing = [name for name in ("ct", "cst") if name not in workspace]
    if missing:
        raise CaseError(
            f"{path}: no variable(s) {', '.join(missing)}; a matRad workspace needs ct and cst, and dij for "
            "matRad's influence matrix (in MATLAB: save(file, 'ct', 'cst', 'dij', 'stf', 'pln', '-v7.3'))"
        )
    if "dij" not in workspace:
        from specc.case.importers.matrad_geometry import import_matrad_geometry

        return import_matrad_geometry(path, workspace, exclude=exclude, case_id=case_id, **(engine or {}))
    if engine:
        raise CaseError(
            f"{path}: the workspace has a dij (matRad's influence matrix); {', '.join(sorted(engine))} apply only "
            "to a workspace without one"
        )
    source = str(path)
    ct, cst, dij = workspace["ct"], workspace["cst"], workspace["dij"]
    for name, value in (("ct", ct), ("dij", dij)):
        if not isinstance(value, dict):
            raise CaseError(f"{source}: '{name}' is not a MATLAB struct")
    notes: list[str] = []
    not_imported: list[str] = []

    ct_dims = int_vector(field_of(ct, "cubeDim", source, "ct"), 3, source, "ct.cubeDim")
    check_cube_dims(ct, ct_dims, source)
    ct_grid_axes = ct_axes(ct, dij, ct_dims, source, notes)
    dose_axes, dose_dims, dose_dims_source = _dose_axes(dij, ct_grid_axes, ct_dims, source)
    grid = Grid(
        shape=(len(dose_axes[0]), len(dose_axes[1]), len(dose_axes[2])),
        spacing_mm=tuple(uniform_step(axis, source, f"dose grid {label}") for axis, label in zip(dose_axes, "xyz")),
        origin_mm=tuple(float(axis[0]) for axis in dose_axes),
    )

    influence_matlab = _physical_dose(dij, source)
    n_voxels = int(np.prod(dose_dims))
    if influence_matlab.shape[0] != n_voxels:
        raise CaseError(
            f"{source}: dij.physicalDose{{1}} has {influence_matlab.shape[0]} rows, the dose grid has "
            f"{n_voxels} voxels ({dose_dims_source} {list(dose_dims)})"
        )
    # matRad row r (0-based, column-major over [Ny Nx Nz]) -> specc flat index (C order over [Nx Ny Nz]).
    iy, ix, iz = np.unravel_index(np.arange(n_voxels), dose_dims, order="F")
    specc_index_of_row = np.ravel_multi_index((ix, iy, iz), grid.shape)

    structures = cst_structures(cst, ct_dims, ct_grid_axes, dose_axes, grid, exclude, source, not_imported)
    check_index_base(cst, ct, ct_dims, source, notes)

    keep = np.zeros(grid.n_voxels, dtype=bool)
    for structure in structures.values():
        keep |= structure.mask.ravel()
    influence_rows = influence_matlab.tocsr()
    nonzero_rows = np.flatnonzero(np.diff(influence_rows.indptr))
    keep[specc_index_of_row[nonzero_rows]] = True
    voxel_indices = np.flatnonzero(keep)
    order = np.empty(grid.n_voxels, dtype=np.int64)
    order[specc_index_of_row] = np.arange(n_voxels)
    influence = influence_rows[order[voxel_indices]].astype(np.float32)

    beams, beamlets = _beams(workspace, dij, influence.shape[1], source, notes)
    beams = world_isocentres(beams, cst, ct, ct_dims, ct_grid_axes, source, notes)
    fractions = plan_fractions(workspace, dij, source)
    if fractions:
        notes.append(f"matRad plan has {fractions} fractions (the protocol's prescription decides in specc)")
    notes.append("dij.physicalDose{1} read as Gy per unit bixel weight per fraction, as matRad uses it")
    notes.append(
        "structure masks resampled from the CT grid to the dose grid by nearest neighbour "
        "(matRad_resizeCstToGrid)"
    )
    case = build_case(
        source,
        case_id=case_id or path.stem,
        grid=grid,
        voxel_indices=voxel_indices,
        influence=influence,
        beams=beams,
        beamlets=beamlets,
        structures=structures,
        density=None,
        metadata=CaseMetadata(
            source=f"matRad workspace {path.name}",
            dose_engine="matRad (dij.physicalDose)",
            extra={
                **ct_grid_record(ct_dims, ct_grid_axes),
                **({} if "stf" in workspace else {BEAMLET_POSITIONS: "unknown"}),
            },
        ),
    )
    not_imported.append("ct.cube / ct.cubeHU: the CT is not stored in the case (the influence matrix is given)")
    not_imported += other_variables(workspace, {"ct", "cst", "dij", "stf", "pln"})
    imported = ImportedCase(case=case, format="matrad", source=source, notes=notes, not_imported=not_imported)
    record_in_metadata(imported)
    return imported


def other_variables(workspace: dict, read: set[str]) -> list[str]:
    """The import report's lines for the workspace variables a case does not hold."""
    return [
        f"variable '{name}': not part of a matRad case" + (
            " (matRad's plan: judge it with `specc check PROTOCOL --case CASE.h5 --dose WORKSPACE.mat`)"
            if name == "resultGUI" else ""
        )
        for name in sorted(set(workspace) - read)
    ]


# --- grids ---------------------------------------------------------------------------------
# The workspace's CT grid as the case keeps it (the case's own grid is matRad's dose grid): what tells
# `specc check --dose WORKSPACE.mat` whether a workspace is of the case's CT. Numbers as Python writes them.
CT_DIMS, CT_RESOLUTION, CT_FIRST_CENTRE = "matrad.ct_dims", "matrad.ct_resolution_mm", "matrad.ct_first_centre_mm"


def ct_grid_record(dims: tuple[int, ...], axes: tuple[np.ndarray, ...]) -> dict[str, str]:
    """ct.cubeDim ([Ny Nx Nz]), the CT's voxel size and its first voxel centre (x, y, z, mm), for the case metadata."""
    resolution = [float(axis[-1] - axis[0]) / (len(axis) - 1) if len(axis) > 1 else 0.0 for axis in axes]
    return {
        CT_DIMS: " ".join(str(int(n)) for n in dims),
        CT_RESOLUTION: " ".join(repr(value) for value in resolution),
        CT_FIRST_CENTRE: " ".join(repr(float(axis[0])) for axis in axes),
    }


def check_cube_dims(ct: dict, dims: tuple[int, ...], source: str) -> None:
    """ct.cubeDim must be the CT cube's own shape ([Ny Nx Nz]): every voxel index of cst and every dij row is
    placed by it, so a cubeDim written [Nx Ny Nz] would move all of them with nothing else to show it."""
    for name in ("cube", "cubeHU"):
        if name in ct:
            cube = first_scenario(ct[name], f"ct.{name}", source)
            if cube.shape != tuple(dims):
                raise CaseError(
                    f"{source}: ct.{name} has shape {list(cube.shape)}, ct.cubeDim is {list(dims)}: matRad writes "
                    "cubeDim as the cube's [Ny Nx Nz], which places every structure voxel and dose row"
                )


def first_scenario(value: Any, label: str, source: str) -> np.ndarray:
    """A CT cube as matRad stores it: one cell per CT scenario (4-D CT), of which specc imports exactly one."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        cells = [cell for cell in value.ravel() if isinstance(cell, np.ndarray) and cell.size]
        if len(cells) != 1:
            raise CaseError(f"{source}: {label} has {len(cells)} CT scenarios; specc imports one")
        value = cells[0]
    array = np.asarray(value)
    if array.ndim != 3:
        raise CaseError(f"{source}: {label} is not a 3-D cube")
    return array


def ct_axes(ct: dict, dij: dict, dims: tuple[int, ...], source: str, notes: list[str]) -> tuple[np.ndarray, ...]:
    """CT voxel-centre coordinates (x, y, z) in mm, as matRad would compute them."""
    ct_grid = dij.get("ctGrid")
    for holder, label in ((ct_grid, "dij.ctGrid"), (ct, "ct")):
        if isinstance(holder, dict) and all(axis in holder for axis in "xyz"):
            axes = tuple(np.asarray(holder[axis], dtype=np.float64).ravel() for axis in "xyz")
            expected = (dims[1], dims[0], dims[2])
            if tuple(len(a) for a in axes) != expected:
                raise CaseError(f"{source}: {label}.x/y/z lengths {[len(a) for a in axes]} do not match ct.cubeDim {list(dims)}")
            return axes
    resolution = _resolution(field_of(ct, "resolution", source, "ct"), source, "ct.resolution")
    if isinstance(ct.get("dicomInfo"), dict) and "ImagePositionPatient" in ct["dicomInfo"]:
        first = np.asarray(ct["dicomInfo"]["ImagePositionPatient"], dtype=np.float64).ravel()
    else:  # matRad_getWorldAxes: the cube centred on the origin, cubeDim [Ny Nx Nz] taken as (x, y, z) counts
        first = -(np.asarray((dims[1], dims[0], dims[2]), dtype=np.float64) / 2) * np.asarray(resolution)
    notes.append("ct has no x/y/z axes: world axes computed as matRad_getWorldAxes does")
    return (
        first[0] + resolution[0] * np.arange(dims[1]),
        first[1] + resolution[1] * np.arange(dims[0]),
        first[2] + resolution[2] * np.arange(dims[2]),
    )


def _dose_axes(
    dij: dict, ct_axes: tuple[np.ndarray, ...], ct_dims: tuple[int, ...], source: str
) -> tuple[tuple[np.ndarray, ...], tuple[int, int, int], str]:
    """The dose grid's axes and dimensions, and where its dimensions were read, so that an error
    about them names a field the workspace has (ct.cubeDim when there is no dij.doseGrid)."""
    dose_grid = dij.get("doseGrid")
    dims_source = "dij.doseGrid.dimensions"
    if isinstance(dose_grid, dict):
        dims = int_vector(field_of(dose_grid, "dimensions", source, "dij.doseGrid"), 3, source, "dij.doseGrid.dimensions")
        if all(axis in dose_grid for axis in "xyz"):
            axes = tuple(np.asarray(dose_grid[axis], dtype=np.float64).ravel() for axis in "xyz")
        elif dims == ct_dims:
            axes = ct_axes
        else:
            raise CaseError(f"{source}: dij.doseGrid has no x/y/z axes and differs from the CT grid")
    else:
        dims, axes = ct_dims, ct_axes  # dose computed on the CT grid
        dims_source = "no dij.doseGrid, so the dose grid is taken to be the CT grid: ct.cubeDim"
    if (len(axes[0]), len(axes[1]), len(axes[2])) != (dims[1], dims[0], dims[2]):
        raise CaseError(
            f"{source}: dij.doseGrid.x/y/z lengths {[len(a) for a in axes]} do not match dimensions {list(dims)}"
        )
    return axes, dims, dims_source  # type: ignore[return-value]


def uniform_step(axis: np.ndarray, source: str, label: str) -> float:
    if len(axis) < 2:
        raise CaseError(f"{source}: {label} axis has fewer than two voxels; its spacing is unknown")
    steps = np.diff(axis)
    if steps.min() <= 0 or np.ptp(steps) > _AXIS_TOLERANCE_MM:
        raise CaseError(f"{source}: {label} axis is not uniformly increasing (steps {steps.min():g} to {steps.max():g} mm)")
    return float(steps.mean())


# --- structures ------------------------------------------------------------------------------
def cst_structures(
    cst: Any,
    ct_dims: tuple[int, ...],
    ct_axes: tuple[np.ndarray, ...],
    dose_axes: tuple[np.ndarray, ...],
    grid: Grid,
    exclude: Sequence[str],
    source: str,
    not_imported: list[str],
) -> dict[str, Structure]:
    if not isinstance(cst, np.ndarray) or cst.dtype != object or cst.ndim != 2 or cst.shape[1] < 4:
        raise CaseError(f"{source}: 'cst' must be a cell array with at least 4 columns (index, name, type, voxels)")
    nearest = [_nearest_indices(ct_axes[a], dose_axes[a]) for a in range(3)]  # dose axis -> CT index or -1
    n_ct = int(np.prod(ct_dims))
    names = cst_names(cst, exclude, source)
    not_imported += [f"{name}{_as_written(cst, row)}: excluded on request" for row, name in names.excluded.items()]
    structures: dict[str, Structure] = {}
    for row, name in names.kept.items():
        ct_mask = np.zeros(n_ct, dtype=bool)
        ct_mask[cst_voxels(cst, row, name, n_ct, source)] = True
        ct_mask = ct_mask.reshape(ct_dims, order="F")  # [y, x, z]
        ix, iy, iz = np.meshgrid(*nearest, indexing="ij")
        inside_ct = (ix >= 0) & (iy >= 0) & (iz >= 0)
        mask = np.zeros(grid.shape, dtype=bool)
        mask[inside_ct] = ct_mask[iy[inside_ct], ix[inside_ct], iz[inside_ct]]
        if not mask.any():
            raise CaseError(
                f"{source}: structure '{name}' has no voxel on the dose grid after resampling "
                "(too small for the dose grid); exclude it with --exclude"
            )
        structures[name] = Structure(name=name, mask=mask, color=_color(cst, row, len(structures)))
    return structures


# Air on the CT: matRad's ct.cube is relative electron density (air ~0.001), ct.cubeHU Hounsfield units (-1000).
_AIR = {"cube": 0.2, "cubeHU": -800.0}
_BODY_NAMES = ("body", "external")


def check_index_base(cst: np.ndarray, ct: dict, ct_dims: tuple[int, ...], source: str, notes: list[str]) -> None:
    """Refuse a cst written with 0-based indices, where the CT tells: the body outline in air on one face.

    A 0-based index read as matRad's 1-based one moves every structure one voxel back along y (the first
    column-major dimension) and no index is out of range, so only the image can show it: the body row
    (type EXTERNAL, or named Body / External) of a patient lies on tissue, and read one voxel off it has a face
    in air. It is refused when 1% or more of its voxels are air as read and at most a tenth of that when read
    0-based. Without a body row or a CT cube nothing can be told: a note says so."""
    kind = next((name for name in ("cube", "cubeHU") if name in ct), None)
    rows = [row for row in range(cst.shape[0]) if str(cst[row, 2]).strip().upper() == "EXTERNAL"
            or str(cst[row, 1]).strip().lower() in _BODY_NAMES]
    if kind is None or not rows:
        notes.append("cst indices taken as 1-based (matRad's); a 0-based export cannot be told from this workspace "
                     "(it needs ct.cube or ct.cubeHU and a body row, type EXTERNAL or named Body): structures would "
                     "sit one voxel off along y")
        return
    air = (first_scenario(ct[kind], f"ct.{kind}", source) < _AIR[kind]).ravel(order="F")
    if air.size != int(np.prod(ct_dims)):
        return  # check_cube_dims has refused a cube of another shape
    row = rows[0]
    voxels = cst_row_indices(cst, row, str(cst[row, 1]).strip(), source)
    voxels = voxels[voxels + 1 < air.size]
    as_read, zero_based = air[voxels].mean() if voxels.size else 0.0, air[voxels + 1].mean() if voxels.size else 0.0
    if as_read >= 0.01 and zero_based <= as_read / 10:
        raise CaseError(
            f"{source}: cst{{{row + 1},4}} ({str(cst[row, 1]).strip()}) looks 0-based: read as matRad's 1-based "
            f"indices, {100 * as_read:.1f}% of its voxels are air on ct.{kind}, read 0-based {100 * zero_based:.1f}%; "
            "every structure would sit one voxel off along y. Add 1 to every cst{i,4} index (matRad's are 1-based) "
            "and save the workspace again"
        )


@dataclass(frozen=True)
class CstNames:
    """The specc name of each cst row (0-based row -> name), kept or left out with --exclude."""

    kept: dict[int, str]
    excluded: dict[int, str]


def cst_names(cst: np.ndarray, exclude: Sequence[str], source: str, error: type[SpeccError] = CaseError) -> CstNames:
    """Each row's specc name: cst{i,2} without leading and trailing spaces (a name typed with a stray space
    still matches a protocol's). `exclude` leaves rows out: a name matches the row named exactly so (spaces
    included), or, when no row is, every row whose specc name it is once trimmed; a name matching no row is an
    error. Two rows kept under one specc name are an error showing both as written: the case could hold only
    one of them. `error` is the caller's error type (a case import's, an objectives translation's)."""
    if not isinstance(cst, np.ndarray) or cst.dtype != object or cst.ndim != 2 or cst.shape[1] < 4:
        raise error(f"{source}: 'cst' must be a cell array with at least 4 columns (index, name, type, voxels)")
    written: list[str] = []
    for row in range(cst.shape[0]):
        name = cst[row, 1]
        if not isinstance(name, str) or not name.strip():
            raise error(f"{source}: cst{{{row + 1},2}} is not a structure name")
        written.append(name)
    left_out: set[int] = set()
    for wanted in exclude:
        rows = [row for row, name in enumerate(written) if name == wanted] or [
            row for row, name in enumerate(written) if name.strip() == wanted.strip()
        ]
        if not rows:
            shown = repr(wanted) if wanted != wanted.strip() else wanted
            raise error(f"{source}: --exclude {shown}: cst has no structure of that name")
        left_out.update(rows)
    kept: dict[int, str] = {}
    first: dict[str, int] = {}
    for row, name in enumerate(written):
        if row in left_out:
            continue
        if name.strip() in first:
            other = first[name.strip()]
            both = f"cst{{{other + 1},2}} {written[other]!r} and cst{{{row + 1},2}} {name!r}"
            if written[other] == name:
                raise error(f"{source}: {both} name two structures alike: rename one of them in matRad and save the "
                            "workspace again")
            raise error(
                f"{source}: {both} are the same structure name, {name.strip()!r}, once leading and trailing spaces "
                "are removed (specc names a structure by cst{i,2} trimmed): rename one of them in matRad and save "
                f"the workspace again, or leave one out with --exclude and its exact name (--exclude {name!r})"
            )
        first[name.strip()] = row
        kept[row] = name.strip()
    return CstNames(kept, {row: written[row].strip() for row in sorted(left_out)})


def _as_written(cst: np.ndarray, row: int) -> str:
    """' (cst{i,2} 'Rectum ')' where the name as written differs from the specc name, else ''."""
    name = cst[row, 1]
    return f" (cst{{{row + 1},2}} {name!r})" if name != name.strip() else ""


def cst_voxels(cst: Any, row: int, name: str, n_ct: int, source: str) -> np.ndarray:
    """The 0-based CT voxel indices (matRad's order) of cst row `row`, checked: one CT scenario, not
    empty, inside the cube."""
    indices = cst_row_indices(cst, row, name, source)
    if indices.size == 0:
        raise CaseError(f"{source}: structure '{name}' has no voxels (cst{{{row + 1},4}}); exclude it with --exclude")
    if indices.max() >= n_ct:
        raise CaseError(
            f"{source}: structure '{name}' has voxel indices outside the CT cube of {n_ct} voxels "
            "(matRad indices are 1-based)"
        )
    return indices


def cst_row_indices(cst: Any, row: int, name: str, source: str, error: type[SpeccError] = CaseError) -> np.ndarray:
    """The 0-based CT voxel indices of cst{row,4} as matRad writes them (possibly none): one CT scenario,
    whole 1-based numbers; whatever else is there is an error, never read some other way."""
    voxels = cst[row, 3]
    scenarios = list(voxels.ravel()) if isinstance(voxels, np.ndarray) and voxels.dtype == object else [voxels]
    if not scenarios:  # `{}`: an empty cell array, as `{[]}` an empty list: no voxels either way
        return np.zeros(0, dtype=np.int64)
    if len(scenarios) != 1:
        raise error(f"{source}: structure '{name}' has {len(scenarios)} CT scenarios; specc imports one")
    try:
        indices = np.asarray(scenarios[0], dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise error(f"{source}: cst{{{row + 1},4}} ({name}) is not a list of voxel indices") from None
    whole = np.all(np.isfinite(indices)) and np.all(indices == np.round(indices))
    if indices.size and (not whole or indices.min() < 1):
        raise error(f"{source}: structure '{name}' has voxel indices that are not whole numbers from 1 (matRad's are)")
    return indices.astype(np.int64) - 1


def _nearest_indices(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """For each new coordinate the nearest old index, -1 beyond half a voxel outside `old`."""
    index = np.clip(np.searchsorted(old, new), 1, len(old) - 1) if len(old) > 1 else np.zeros(len(new), int)
    if len(old) > 1:
        index = np.where(np.abs(new - old[index - 1]) <= np.abs(new - old[index]), index - 1, index)
    half = (abs(old[1] - old[0]) / 2 if len(old) > 1 else 0.5) + _AXIS_TOLERANCE_MM
    outside = (new < old[0] - half) | (new > old[-1] + half)
    return np.where(outside, -1, index)


def _color(cst: np.ndarray, row: int, position: int) -> str:
    return visible_color(cst, row) or _FALLBACK_COLORS[position % len(_FALLBACK_COLORS)]


def visible_color(cst: np.ndarray, row: int) -> str | None:
    """cst{row,5}.visibleColor ([r g b] in 0..1) as '#rrggbb'; None when the row has none."""
    if cst.shape[1] >= 5 and isinstance(cst[row, 4], dict) and "visibleColor" in cst[row, 4]:
        rgb = np.asarray(cst[row, 4]["visibleColor"], dtype=np.float64).ravel()
        if rgb.size == 3 and np.all((rgb >= 0) & (rgb <= 1)):
            return "#{:02x}{:02x}{:02x}".format(*(int(round(c * 255)) for c in rgb))
    return None


# --- influence and beams ---------------------------------------------------------------------
def _physical_dose(dij: dict, source: str) -> sp.csc_matrix:
    dose = dij.get("physicalDose")
    if dose is None:
        raise CaseError(f"{source}: dij has no physicalDose (the influence matrix)")
    if isinstance(dose, np.ndarray) and dose.dtype == object:
        cells = [c for c in dose.ravel() if not (isinstance(c, np.ndarray) and c.size == 0)]
        if len(cells) != 1:
            raise CaseError(f"{source}: dij.physicalDose has {len(cells)} scenarios; specc imports one")
        dose = cells[0]
    if sp.issparse(dose):
        return sp.csc_matrix(dose)
    if isinstance(dose, np.ndarray) and dose.ndim == 2 and dose.dtype.kind == "f":
        return sp.csc_matrix(dose)
    raise CaseError(f"{source}: dij.physicalDose{{1}} is not a matrix")


def check_couch_angles(gantry: np.ndarray, couch: np.ndarray, source: str) -> None:
    """pln.propStf's couch angles pair with its gantry angles, one each; matRad refuses other counts
    ('Inconsistent number of gantry and couch angles'), and couch 0 for all would silently make
    non-coplanar beams coplanar."""
    if couch.size != gantry.size:
        raise CaseError(
            f"{source}: pln.propStf has {gantry.size} gantry angles (gantryAngles) but {couch.size} couch angles "
            "(couchAngles): each beam needs one of each, as matRad requires"
        )


def _beams(workspace: dict, dij: dict, n_columns: int, source: str, notes: list[str]) -> tuple[list[Beam], Beamlets]:
    stf = workspace.get("stf")
    if stf is not None:
        return _beams_from_stf(stf if isinstance(stf, list) else [stf], dij, n_columns, source)
    pln = workspace.get("pln") if isinstance(workspace.get("pln"), dict) else {}
    prop = pln.get("propStf", {}) if isinstance(pln.get("propStf"), dict) else {}
    beam_num = _index_vector(dij, "beamNum", n_columns, source)
    ray_num = _index_vector(dij, "rayNum", n_columns, source)
    beam_ids = np.unique(beam_num)
    gantry = np.asarray(prop.get("gantryAngles", []), dtype=np.float64).ravel()
    couch = np.asarray(prop.get("couchAngles", np.zeros(len(gantry))), dtype=np.float64).ravel()
    iso = np.asarray(prop.get("isoCenter", np.zeros((1, 3))), dtype=np.float64).reshape(-1, 3)
    width = float(np.asarray(prop.get("bixelWidth", np.nan)).ravel()[0])
    if len(gantry) == len(beam_ids):
        check_couch_angles(gantry, couch, source)
        notes.append("no stf: beam angles and isocentre from pln.propStf")
    else:
        gantry = np.zeros(len(beam_ids))
        couch = np.zeros(len(beam_ids))
        notes.append("no stf and no pln.propStf angles: beam angles unknown, recorded as gantry 0")
    if not np.isfinite(width) or width <= 0:
        width = 1.0
        notes.append("bixel width unknown: beamlets recorded as 1 mm wide")
    notes.append(
        "no stf: beamlet positions unknown, laid out in a row in dij.rayNum order; "
        "fluence smoothness between beamlets is not meaningful for this case"
    )
    beams = [
        Beam(id=int(b), gantry_deg=float(gantry[n]), couch_deg=float(couch[n] if n < len(couch) else 0.0),
             isocenter_mm=tuple(iso[min(n, len(iso) - 1)]), energy="unknown")
        for n, b in enumerate(beam_ids)
    ]
    beamlets = Beamlets(beam_id=beam_num, x_mm=(ray_num - 1) * width, y_mm=np.zeros(n_columns),
                        width_mm=np.full(n_columns, width), height_mm=np.full(n_columns, width))
    return beams, beamlets


def _beams_from_stf(stf: list[dict], dij: dict, n_columns: int, source: str) -> tuple[list[Beam], Beamlets]:
    beams: list[Beam] = []
    parts: list[Beamlets] = []
    for number, beam in enumerate(stf, start=1):
        mode = str(beam.get("radiationMode", "photons"))
        if mode != "photons":
            raise CaseError(f"{source}: stf({number}).radiationMode is '{mode}'; specc plans photon IMRT only")
        rays = beam.get("ray")
        rays = rays if isinstance(rays, list) else [rays] if isinstance(rays, dict) else []
        if not rays:
            raise CaseError(f"{source}: stf({number}) has no rays")
        width = _scalar(beam, "bixelWidth", source, f"stf({number})")
        positions = []
        for ray_number, ray in enumerate(rays, start=1):
            bixels = int(np.asarray(ray.get("energy", [[0]])).size)
            if bixels != 1:
                raise CaseError(f"{source}: stf({number}).ray({ray_number}) has {bixels} bixels; photon rays have one")
            position = np.asarray(ray.get("rayPos_bev"), dtype=np.float64).ravel()
            if position.size != 3:
                raise CaseError(f"{source}: stf({number}).ray({ray_number}).rayPos_bev is not [x y z]")
            positions.append(position)
        positions_array = np.asarray(positions)
        energy = float(np.asarray(rays[0].get("energy", [[np.nan]])).ravel()[0])
        beams.append(
            Beam(
                id=number,
                gantry_deg=_scalar(beam, "gantryAngle", source, f"stf({number})"),
                couch_deg=float(np.asarray(beam.get("couchAngle", 0.0)).ravel()[0]),
                isocenter_mm=tuple(np.asarray(field_of(beam, "isoCenter", source, f"stf({number})"), dtype=np.float64).ravel()[:3]),
                sad_mm=float(np.asarray(beam.get("SAD", 1000.0)).ravel()[0]),
                energy=f"{energy:g} MV" if np.isfinite(energy) else "unknown",
            )
        )
        # matRad's beam's-eye view: x lateral, y along the central axis, z the second lateral axis.
        n = len(rays)
        parts.append(Beamlets(beam_id=np.full(n, number), x_mm=positions_array[:, 0], y_mm=positions_array[:, 2],
                              width_mm=np.full(n, width), height_mm=np.full(n, width)))
    beamlets = Beamlets.concatenate(parts)
    if len(beamlets) != n_columns:
        raise CaseError(f"{source}: stf describes {len(beamlets)} bixels, dij.physicalDose{{1}} has {n_columns} columns")
    if "beamNum" in dij:
        beam_num = _index_vector(dij, "beamNum", n_columns, source)
        if not np.array_equal(beam_num, beamlets.beam_id):
            raise CaseError(f"{source}: dij.beamNum disagrees with the order of the bixels in stf")
    return beams, beamlets


def world_isocentres(
    beams: list[Beam], cst: np.ndarray, ct: dict, ct_dims: tuple[int, ...], axes: tuple[np.ndarray, ...],
    source: str, notes: list[str],
) -> list[Beam]:
    """Beams with their isocentre in world (LPS) mm, whichever system the workspace's matRad wrote it in.

    matRad before its world-coordinate change (pull request #751, 2024; every 2.x release) stores stf.isoCenter
    in cube coordinates: `matRad_getIsoCenter` returns the TARGET voxels' mean of [x y z] index times
    ct.resolution, voxel (1,1,1) at (res.x, res.y, res.z); matRad 3 returns their world centroid. No field of
    the workspace says which matRad saved it, so the isocentre is compared with that centroid in both systems
    (half a CT voxel): matching the cube one it is converted (world = cube - resolution + first voxel centre,
    matRad_cube2worldCoords), matching neither it is read as world coordinates with a note to verify it.
    """
    resolution = np.array([uniform_step(axis, source, f"CT {label}") if len(axis) > 1 else 1.0
                           for axis, label in zip(axes, "xyz")])
    if isinstance(ct.get("resolution"), dict):
        resolution = np.asarray(_resolution(ct["resolution"], source, "ct.resolution"))
    shift = np.array([axis[0] for axis in axes]) - resolution  # world = cube + shift
    tolerance = 0.5 * float(resolution.min())
    if not beams or np.all(np.abs(shift) <= tolerance):
        return beams  # the two systems coincide here: nothing to tell apart
    target = _isocentre_voxels(cst, int(np.prod(ct_dims)), source)
    if target.size == 0:
        notes.append("isocentre read as world coordinates (matRad >= 3); no TARGET voxels to tell it from matRad "
                     "2.x's cube coordinates (world = cube + " + _mm(shift) + "): verify it")
        return beams
    iy, ix, iz = np.unravel_index(target, ct_dims, order="F")
    cube = np.array([(ix + 1).mean(), (iy + 1).mean(), (iz + 1).mean()]) * resolution
    world_centroid = cube + shift
    said: dict[str, list[int]] = {}  # one note per isocentre, naming its beams
    converted: list[Beam] = []
    for beam in beams:
        iso = np.asarray(beam.isocenter_mm, dtype=np.float64)
        if np.all(np.abs(iso - world_centroid) <= tolerance):
            converted.append(beam)
            continue
        if np.all(np.abs(iso - cube) <= tolerance):
            world = tuple(float(v) for v in iso + shift)
            said.setdefault(f"isoCenter {_mm(iso)} is the TARGET centroid in matRad 2.x's cube coordinates (voxel "
                            f"(1,1,1) at ct.resolution): converted to world {_mm(world)}", []).append(beam.id)
            beam = replace(beam, isocenter_mm=world)
        else:
            said.setdefault(f"isoCenter {_mm(iso)} is the TARGET centroid in neither world {_mm(world_centroid)} "
                            f"nor matRad 2.x's cube coordinates {_mm(cube)}: read as world coordinates (matRad >= 3); "
                            f"written by matRad 2.x it would be world {_mm(iso + shift)}: verify it", []).append(beam.id)
        converted.append(beam)
    notes += [f"beam{'s' * (len(ids) > 1)} {', '.join(map(str, ids))}: {text}" for text, ids in said.items()]
    return converted


def _isocentre_voxels(cst: Any, n_ct: int, source: str) -> np.ndarray:
    """The CT voxels matRad_getIsoCenter averages: TARGET rows with objectives, or every TARGET row when no row
    has any."""
    if not isinstance(cst, np.ndarray) or cst.dtype != object or cst.ndim != 2 or cst.shape[1] < 4:
        return np.zeros(0, dtype=np.int64)
    rows = [row for row in range(cst.shape[0]) if str(cst[row, 2]).strip().upper() == "TARGET"]
    with_functions = [row for row in rows if cst.shape[1] >= 6 and np.size(cst[row, 5]) > 0]
    if any(cst.shape[1] >= 6 and np.size(cst[row, 5]) > 0 for row in range(cst.shape[0])):
        rows = with_functions
    parts = [cst_row_indices(cst, row, str(cst[row, 1]), source) for row in rows]
    voxels = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    return voxels[voxels < n_ct]


def _mm(values: Any) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in values) + ") mm"


def plan_fractions(workspace: dict, dij: dict, source: str) -> int | None:
    """The workspace's fractions: pln.numOfFractions, else dij.numOfFractions, else None."""
    for owner, holder in (("pln", workspace.get("pln")), ("dij", dij)):
        stated = stated_fractions(holder, owner, source)
        if stated is not None:
            return stated
    return None


def stated_fractions(holder: Any, owner: str, source: str, error: type[SpeccError] = CaseError) -> int | None:
    """`owner`.numOfFractions as a whole number of fractions (None when `holder` states none); a fraction of a
    fraction, or none at all, is an error rather than a number read some other way."""
    if not isinstance(holder, dict) or "numOfFractions" not in holder:
        return None
    try:
        value = np.asarray(holder["numOfFractions"], dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise error(f"{source}: {owner}.numOfFractions must be a positive integer, got {holder['numOfFractions']!r}") from None
    if value.size != 1 or not value[0] >= 1 or value[0] != round(value[0]):
        raise error(f"{source}: {owner}.numOfFractions must be a positive integer, got {value.tolist()}")
    return int(value[0])


# --- small readers -----------------------------------------------------------------------------
def field_of(struct: dict, name: str, source: str, owner: str) -> Any:
    if not isinstance(struct, dict) or name not in struct:
        raise CaseError(f"{source}: {owner} has no field '{name}'")
    return struct[name]


def _scalar(struct: dict, name: str, source: str, owner: str) -> float:
    value = np.asarray(field_of(struct, name, source, owner), dtype=np.float64).ravel()
    if value.size != 1 or not np.isfinite(value[0]):
        raise CaseError(f"{source}: {owner}.{name} is not a finite number")
    return float(value[0])


def int_vector(value: Any, length: int, source: str, label: str) -> tuple[int, ...]:
    array = np.asarray(value, dtype=np.float64).ravel()
    if array.size != length or np.any(array < 1) or not np.all(array == np.round(array)):
        raise CaseError(f"{source}: {label} must be {length} positive integers, got {array.tolist()}")
    return tuple(int(v) for v in array)


def _resolution(value: Any, source: str, label: str) -> tuple[float, float, float]:
    if not isinstance(value, dict) or not all(axis in value for axis in "xyz"):
        raise CaseError(f"{source}: {label} must be a struct with x, y and z")
    return tuple(float(np.asarray(value[axis]).ravel()[0]) for axis in "xyz")  # type: ignore[return-value]


def _index_vector(dij: dict, name: str, length: int, source: str) -> np.ndarray:
    if name not in dij:
        raise CaseError(f"{source}: there is no stf and dij has no {name}; the beam of each bixel is unknown")
    values = np.asarray(dij[name], dtype=np.float64).ravel()
    if values.size != length:
        raise CaseError(f"{source}: dij.{name} has {values.size} entries for {length} bixels")
    return values.astype(np.int64)
