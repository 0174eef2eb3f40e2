"""A matRad workspace without a dij (ct and cst only) as a specc case, its influence matrix computed here.

The phantoms matRad and pyRadPlan ship (TG119.mat, PROSTATE.mat, HEAD_AND_NECK.mat, ...) hold
the CT and the structures but no dose influence matrix: matRad computes one when a plan is
made. specc computes it with its own engine instead (`engine_case.py`; approximate, and said
so in the case's notes): a dose grid over the box of all structures (x and y at `grid_mm`, z on
the CT slices unless three spacings are given), the masks resampled as matRad resamples them
(`cst_structures`), the densities from ct.cube (matRad's relative electron density) or, without
it, ct.cubeHU through an HU table, traced by the rays on the CT grid itself (its resolution, its
whole extent), and the beams from `beams`, or else from pln.propStf's angles, aimed at the
centre of mass of the TARGET structures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from specc.case.engine import DensityVolume, PencilBeamModel
from specc.case.importers.dicom_ct import resample
from specc.case.importers.engine_case import box_grid, engine_influence, grid_spacing, scanned_density, traced_note
from specc.case.importers.hu_density import (
    DEFAULT_HU_TABLE, HU_TABLE_KEY, beyond_table_notes, hu_table_record, hu_table_said,
    hu_to_relative_electron_density,
)
from specc.case.importers.matrad import (
    check_couch_angles, check_cube_dims, check_index_base, cst_names, ct_axes, ct_grid_record, cst_structures,
    cst_voxels, field_of, first_scenario, int_vector, other_variables, uniform_step,
)
from specc.case.importers.report import ImportedCase, build_case, record_in_metadata
from specc.case.model import CaseMetadata, Grid
from specc.errors import CaseError

DEFAULT_BEAMS = 7
# Relative electron density given to dose-grid voxels beyond the CT (air).
_AIR_DENSITY = 0.001


def import_matrad_geometry(
    path: Path,
    workspace: dict,
    *,
    beams: int | Sequence[float] | None = None,
    beamlet_mm: float = 5.0,
    grid_mm: float | Sequence[float] = 3.0,
    targets: Sequence[str] = (),
    exclude: Sequence[str] = (),
    hu_table: tuple[tuple[float, float], ...] = DEFAULT_HU_TABLE,
    case_id: str | None = None,
    model: PencilBeamModel | None = None,
) -> ImportedCase:
    """The case of a workspace with ct and cst but no dij (see the module docstring)."""
    source = str(path)
    ct, cst = workspace["ct"], workspace["cst"]
    notes: list[str] = ["no dij in the workspace: the influence matrix is specc's own (below), not matRad's"]
    not_imported: list[str] = []
    dims = int_vector(field_of(ct, "cubeDim", source, "ct"), 3, source, "ct.cubeDim")
    axes = ct_axes(ct, {}, dims, source, notes)
    steps = tuple(uniform_step(axis, source, f"CT {label}") for axis, label in zip(axes, "xyz"))
    names = cst_names(cst, exclude, source)
    grid = box_grid(*_structures_box(cst, dims, axes, names.kept, source), grid_spacing(grid_mm, steps[2]))
    structures = cst_structures(cst, dims, axes, grid.axes_mm(), grid, exclude, source, not_imported)
    check_index_base(cst, ct, dims, source, notes)
    traced, converted = _ct_density(ct, dims, axes, steps, grid, hu_table, source)
    density = resample(traced.density, traced.grid.origin_mm, steps, grid, _AIR_DENSITY)
    extra = ct_grid_record(dims, axes)
    if converted is None:
        notes.append("density: ct.cube (matRad's relative electron density)")
    else:
        notes.append(f"density from ct.cubeHU (no ct.cube) through {hu_table_said(hu_table)}")
        notes += beyond_table_notes(converted, hu_table)
        extra[HU_TABLE_KEY] = hu_table_record(hu_table)
    notes.append(traced_note(traced, "the CT cube"))
    notes.append("the case's /density is the CT resampled to the dose grid (trilinear, air beyond the CT), for reports")
    target_names = _targets(cst, names.kept, structures, targets, source)
    angles, couches = _angles(workspace, beams, notes, source)
    model = model or PencilBeamModel()
    computed = engine_influence(grid, structures, traced, target_names, angles, beamlet_mm, model, couch_deg=couches)
    notes.append(computed.note)
    notes.append("structure masks resampled from the CT grid to the dose grid by nearest neighbour (matRad_resizeCstToGrid)")
    case = build_case(
        source,
        case_id=case_id or path.stem,
        grid=grid,
        voxel_indices=computed.influence.voxel_indices,
        influence=computed.influence.matrix,
        beams=computed.beams,
        beamlets=computed.influence.beamlets,
        structures=structures,
        density=density,
        # the workspace's CT grid, so that a check of a workspace's dose on this case can tell it is the same CT
        metadata=CaseMetadata(source=f"matRad workspace {path.name} (no dij)", dose_engine=model.label, extra=extra),
    )
    not_imported += other_variables(workspace, {"ct", "cst", "pln"})
    imported = ImportedCase(case=case, format="matrad", source=source, notes=notes, not_imported=not_imported)
    record_in_metadata(imported)
    return imported


def _structures_box(
    cst: Any, dims: tuple[int, ...], axes: tuple[np.ndarray, ...], kept: Mapping[int, str], source: str
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The lowest and highest CT voxel centres (x, y, z) of the structures `kept` (cst row -> name)."""
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    for row, name in kept.items():
        iy, ix, iz = np.unravel_index(cst_voxels(cst, row, name, int(np.prod(dims)), source), dims, order="F")
        for axis, index in enumerate((ix, iy, iz)):
            low[axis] = min(low[axis], axes[axis][index.min()])
            high[axis] = max(high[axis], axes[axis][index.max()])
    if not np.all(np.isfinite(low)):
        raise CaseError(f"{source}: cst holds no structure voxels to place a dose grid on")
    return tuple(low), tuple(high)  # type: ignore[return-value]


def _ct_density(
    ct: dict, dims: tuple[int, ...], axes: tuple[np.ndarray, ...], steps: tuple[float, ...], dose_grid: Grid,
    hu_table, source: str,
) -> tuple[DensityVolume, np.ndarray | None]:
    """Relative electron density on the CT grid (what the rays cross), and the HU it came from (None: ct.cube)."""
    for name, converted in (("cube", False), ("cubeHU", True)):
        if name in ct:
            cube = first_scenario(ct[name], f"ct.{name}", source)
            break
    else:
        raise CaseError(f"{source}: ct has neither cube (electron density) nor cubeHU: no density for the dose engine")
    check_cube_dims(ct, dims, source)
    values = np.transpose(np.asarray(cube, dtype=np.float32), (1, 0, 2))  # [Ny Nx Nz] -> (x, y, z)
    grid = Grid(shape=values.shape, spacing_mm=steps, origin_mm=tuple(float(axis[0]) for axis in axes))  # type: ignore[arg-type]
    if converted:
        return scanned_density(hu_to_relative_electron_density(values, hu_table), grid, dose_grid), values
    if not (np.isfinite(values).all() and values.min() >= 0):
        raise CaseError(f"{source}: ct.cube has negative or non-finite values: not an electron density")
    return scanned_density(values, grid, dose_grid), None


def _targets(cst: Any, kept: Mapping[int, str], structures: dict, targets: Sequence[str], source: str) -> list[str]:
    if targets:
        unknown = [name for name in targets if name not in structures]
        if unknown:
            raise CaseError(f"{source}: --target {', '.join(unknown)}: no such structure ({', '.join(structures)})")
        return list(targets)
    typed = [name for row, name in kept.items() if str(cst[row, 2]).strip().upper() == "TARGET" and name in structures]
    if not typed:
        raise CaseError(f"{source}: no cst structure is typed TARGET; name the target(s) the beams cover with --target")
    return typed


def _angles(
    workspace: dict, beams: int | Sequence[float] | None, notes: list[str], source: str
) -> tuple[int | list[float], list[float]]:
    """The beams asked for, else pln.propStf's gantry (and couch) angles, else equispaced ones."""
    pln = workspace.get("pln") if isinstance(workspace.get("pln"), dict) else {}
    prop = pln.get("propStf", {}) if isinstance(pln.get("propStf"), dict) else {}
    gantry = np.asarray(prop.get("gantryAngles", []), dtype=np.float64).ravel()
    couch = np.asarray(prop.get("couchAngles", np.zeros(gantry.size)), dtype=np.float64).ravel()
    if beams is not None:
        if np.any(couch):
            notes.append(
                f"--beams replaces pln.propStf's beams, couch angles included: its couch angles "
                f"{', '.join(f'{c:g}' for c in couch)} deg are not used (all beams at couch 0)"
            )
        return (beams if isinstance(beams, int) else list(beams)), []
    if gantry.size:
        check_couch_angles(gantry, couch, source)
        notes.append("beam angles from pln.propStf; its isoCenter is not used (the beams aim at the targets' centre)")
        turned_gantry, turned_couch = np.mod(gantry, 360.0), np.mod(couch, 360.0)
        if np.any(turned_gantry != gantry) or np.any(turned_couch != couch):
            notes.append("pln.propStf angles outside 0-360 deg taken as the same directions within it (IEC 61217)")
        return turned_gantry.tolist(), turned_couch.tolist()
    notes.append(f"no pln.propStf angles and no --beams: {DEFAULT_BEAMS} equispaced coplanar beams")
    return DEFAULT_BEAMS, []
