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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from specc.case.importers.external_dose import ExternalDose, file_sha256
from specc.case.importers.mat_file import load_mat
from specc.case.importers.matrad import cst_names, ct_axes, cst_voxels, plan_fractions, uniform_step, visible_color
from specc.case.importers.report import build_case
from specc.case.model import MIN_HU, Beamlets, Case, CaseMetadata, Grid, Structure
from specc.errors import CaseError

DOSE_FIELD = "physicalDose"
_FALLBACK_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c")


def is_matrad_workspace(path: str | Path) -> bool:
    """A dose file named as a matRad workspace (.mat) rather than a DICOM RT Dose."""
    return Path(path).suffix.lower() == ".mat"


@dataclass(frozen=True)
class MatradPlan:
    """matRad's plan as matRad measures it: resultGUI's total dose and the case of the workspace's
    CT grid with its cst{i,4} structures (the dose's own grid: nothing is interpolated)."""

    dose: ExternalDose
    case: Case
    left_out: list[str]  # cst rows that are no structure of the case, and why


def read_matrad_dose(path: str | Path, fractions: int | None) -> ExternalDose:
    """resultGUI.physicalDose of a matRad workspace as the total dose of `fractions` fractions
    (None: the workspace's own `pln.numOfFractions`, which must then be stated: a prior course's)."""
    path = Path(path)
    return _result_dose(load_mat(path), path, fractions)


def read_matrad_plan(path: str | Path, fractions: int, case_id: str | None = None) -> MatradPlan:
    """resultGUI.physicalDose as `read_matrad_dose` reads it, with the case matRad measures it on:
    the CT grid and the cst{i,4} voxels of every cst row (named `case_id`, else the file's stem)."""
    path = Path(path)
    workspace = load_mat(path)
    dose = _result_dose(workspace, path, fractions)
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
    return MatradPlan(dose=replace(dose, notes=[*dose.notes, note, *left_out]), case=case, left_out=left_out)


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
