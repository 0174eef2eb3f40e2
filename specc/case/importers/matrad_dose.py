"""The dose matRad optimized (a workspace's resultGUI.physicalDose), read so that specc can check it.

matRad keeps its optimized dose in `resultGUI.physicalDose`: a cube on the CT grid
([Ny Nx Nz], like ct.cube), in Gy **per fraction** (its dij is per fraction; matRad divides
its objectives' doses by pln.numOfFractions). It is read on the CT's world axes exactly as the
matRad importer places the case (`ct_axes`), multiplied by the protocol's fractions, and the
workspace's own fractions, when it states them, must be the protocol's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specc.case.importers.external_dose import ExternalDose, file_sha256
from specc.case.importers.mat_file import load_mat
from specc.case.importers.matrad import ct_axes, plan_fractions, uniform_step
from specc.case.model import Grid
from specc.errors import CaseError

DOSE_FIELD = "physicalDose"


def read_matrad_dose(path: str | Path, fractions: int | None) -> ExternalDose:
    """resultGUI.physicalDose of a matRad workspace as the total dose of `fractions` fractions
    (None: the workspace's own `pln.numOfFractions`, which must then be stated: a prior course's)."""
    path = Path(path)
    workspace = load_mat(path)
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
    stated = plan_fractions(workspace, dij if isinstance(dij, dict) else {})
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
