"""PortPy patient folders (JSON metadata beside HDF5 data) as specc cases.

PortPy keeps the CT and the structure masks on the CT grid, arrays ordered (z, y, x), and
the influence matrix on "optimization voxels": each CT voxel of the calculation box maps to
one dose voxel (`ct_to_dose_voxel_map`), and the dose voxels form a regular grid of
`dose_voxel_resolution_xyz_mm`. The specc case lives on that dose grid: each dose voxel is
placed at its coordinate (`voxel_coordinate_XYZ_mm` when given, else the centroid of its CT
voxels) snapped to the lattice; a dose voxel belongs to a structure when at least half of
its CT voxels do. Influence rows are the dose voxels, in Gy per unit intensity per fraction
(PortPy's A x is the dose of one fraction). docs/formats/portpy.md lists what is not mapped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sp

from specc.case.importers.hu_density import (
    DEFAULT_HU_TABLE, HU_TABLE_KEY, beyond_table_notes, hu_table_record, hu_table_said,
    hu_to_relative_electron_density,
)
from specc.case.importers.report import ImportedCase, build_case, record_in_metadata
from specc.case.model import Beam, Beamlets, CaseMetadata, Grid, Structure
from specc.errors import CaseError

# A dose voxel's coordinate may sit this fraction of a spacing off its lattice point.
_LATTICE_TOLERANCE = 0.25
# A structure's dose-grid volume differing from PortPy's by more than this fraction is noted.
_VOLUME_NOTE = 0.05
_MAJORITY = 0.5
_FALLBACK_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c")


def import_portpy(
    folder: str | Path,
    *,
    exclude: Sequence[str] = (),
    hu_table: tuple[tuple[float, float], ...] = DEFAULT_HU_TABLE,
    case_id: str | None = None,
) -> ImportedCase:
    folder = Path(folder)
    if not folder.is_dir():
        raise CaseError(f"{folder}: not a PortPy patient folder")
    notes: list[str] = []
    not_imported: list[str] = []

    ct_meta = _json(folder / "CT_MetaData.json")
    hu_zyx = _dataset(folder, ct_meta, "ct_hu_3d_File", "CT_MetaData.json").astype(np.float32)
    ct_spacing = np.asarray(_key(ct_meta, "resolution_xyz_mm", "CT_MetaData.json"), dtype=np.float64)
    ct_origin = np.asarray(_key(ct_meta, "origin_xyz_mm", "CT_MetaData.json"), dtype=np.float64)
    if hu_zyx.ndim != 3 or ct_spacing.shape != (3,) or ct_origin.shape != (3,):
        raise CaseError(f"{folder / 'CT_MetaData.json'}: CT must be 3-D with 3 resolution and origin values")

    voxel_meta = _json(folder / "OptimizationVoxels_MetaData.json")
    voxel_map = _dataset(folder, voxel_meta, "ct_to_dose_voxel_map_File", "OptimizationVoxels_MetaData.json")
    voxel_map = voxel_map.astype(np.int64)
    if voxel_map.shape != hu_zyx.shape:
        raise CaseError(
            f"{folder}: ct_to_dose_voxel_map has shape {voxel_map.shape} (z, y, x), the CT {hu_zyx.shape}"
        )
    dose_spacing = np.asarray(
        _key(voxel_meta, "dose_voxel_resolution_xyz_mm", "OptimizationVoxels_MetaData.json"), dtype=np.float64
    )
    if dose_spacing.shape != (3,) or np.any(dose_spacing <= 0):
        raise CaseError(
            f"{folder / 'OptimizationVoxels_MetaData.json'}: dose_voxel_resolution_xyz_mm {dose_spacing.tolist()} "
            "is not a regular grid (non-uniform point sampling cannot be put on a dose grid)"
        )

    # CT voxel centres (x, y, z) of every mapped CT voxel.
    mapped = voxel_map >= 0
    n_dose = int(voxel_map.max()) + 1 if mapped.any() else 0
    if n_dose == 0:
        raise CaseError(f"{folder}: ct_to_dose_voxel_map maps no CT voxel to a dose voxel")
    kz, ky, kx = np.nonzero(mapped)
    dose_of_ct = voxel_map[mapped]
    counts = np.bincount(dose_of_ct, minlength=n_dose)
    if np.any(counts == 0):
        raise CaseError(f"{folder}: dose voxels {np.flatnonzero(counts == 0)[:5].tolist()}... have no CT voxel")
    coordinates = _dose_voxel_coordinates(folder, voxel_meta, dose_of_ct, counts, (kx, ky, kz), ct_origin, ct_spacing)
    grid, flat_of_dose = _lattice(coordinates, dose_spacing, folder)

    structures = _structures(folder, voxel_map, dose_of_ct, counts, flat_of_dose, grid, exclude, hu_zyx.shape,
                             ct_spacing, not_imported, notes)
    influence_by_dose, beams, beamlets = _beams(folder, n_dose, notes)

    order = np.argsort(flat_of_dose)
    voxel_indices = flat_of_dose[order]
    influence = influence_by_dose[order].astype(np.float32)

    hu_sum = np.bincount(dose_of_ct, weights=hu_zyx[mapped], minlength=n_dose)
    density = np.full(grid.n_voxels, hu_to_relative_electron_density(np.array(-1000.0)), dtype=np.float32)
    density[flat_of_dose] = hu_to_relative_electron_density(hu_sum / counts, hu_table)
    notes += [
        "dose grid from PortPy's optimization voxels; a dose voxel belongs to a structure when at least "
        "half of its CT voxels do",
        "influence read as Gy per unit beamlet intensity per fraction (PortPy's A)",
        f"density: mean HU of each dose voxel's CT voxels through {hu_table_said(hu_table)}; air outside the "
        "calculation box",
        *beyond_table_notes(hu_zyx[mapped], hu_table),
    ]
    case = build_case(
        str(folder),
        case_id=case_id or folder.name,
        grid=grid,
        voxel_indices=voxel_indices,
        influence=influence,
        beams=beams,
        beamlets=beamlets,
        structures=structures,
        density=density.reshape(grid.shape),
        metadata=CaseMetadata(
            source=f"PortPy patient {folder.name}", dose_engine="PortPy influence matrix",
            extra={HU_TABLE_KEY: hu_table_record(hu_table)},
        ),
    )
    for optional in ("ClinicalCriteria_MetaData.json", "rt_plan.dcm", "rt_dose.dcm"):
        if (folder / optional).exists():
            not_imported.append(f"{optional}: not part of the case (criteria: specc import portpy-criteria)")
    imported = ImportedCase(case=case, format="portpy", source=str(folder), notes=notes, not_imported=not_imported)
    record_in_metadata(imported)
    return imported


def _dose_voxel_coordinates(
    folder: Path,
    voxel_meta: dict,
    dose_of_ct: np.ndarray,
    counts: np.ndarray,
    ct_index_xyz: tuple[np.ndarray, np.ndarray, np.ndarray],
    ct_origin: np.ndarray,
    ct_spacing: np.ndarray,
) -> np.ndarray:
    """(n_dose, 3) coordinates in mm: PortPy's own when stored, else the centroid of the CT voxels."""
    if "voxel_coordinate_XYZ_mm_File" in voxel_meta:
        stored = _dataset(folder, voxel_meta, "voxel_coordinate_XYZ_mm_File", "OptimizationVoxels_MetaData.json")
        stored = np.asarray(stored, dtype=np.float64)
        if stored.shape == (len(counts), 3):
            return stored
        raise CaseError(f"{folder}: voxel_coordinate_XYZ_mm has shape {stored.shape}, expected ({len(counts)}, 3)")
    return np.column_stack(
        [np.bincount(dose_of_ct, weights=ct_origin[a] + ct_spacing[a] * ct_index_xyz[a]) / counts for a in range(3)]
    )


def _lattice(coordinates: np.ndarray, spacing: np.ndarray, folder: Path) -> tuple[Grid, np.ndarray]:
    origin = coordinates.min(axis=0)
    index = np.rint((coordinates - origin) / spacing).astype(np.int64)
    off = np.abs((coordinates - origin) / spacing - index).max()
    if off > _LATTICE_TOLERANCE:
        raise CaseError(
            f"{folder}: the optimization voxels are not on a regular {spacing.tolist()} mm grid "
            f"(a voxel sits {off:.2f} spacings off its grid point)"
        )
    shape = tuple(int(n) for n in index.max(axis=0) + 1)
    flat = np.ravel_multi_index(index.T, shape)
    if len(np.unique(flat)) != len(flat):
        raise CaseError(f"{folder}: two optimization voxels fall on the same point of the {spacing.tolist()} mm grid")
    return Grid(shape=shape, spacing_mm=tuple(spacing), origin_mm=tuple(origin)), flat  # type: ignore[arg-type]


def _structures(
    folder: Path,
    voxel_map: np.ndarray,
    dose_of_ct: np.ndarray,
    counts: np.ndarray,
    flat_of_dose: np.ndarray,
    grid: Grid,
    exclude: Sequence[str],
    ct_shape: tuple[int, ...],
    ct_spacing: np.ndarray,
    not_imported: list[str],
    notes: list[str],
) -> dict[str, Structure]:
    entries = _json(folder / "StructureSet_MetaData.json")
    if not isinstance(entries, list):
        raise CaseError(f"{folder / 'StructureSet_MetaData.json'}: expected a list of structures")
    names = [str(_key(entry, "name", "StructureSet_MetaData.json")) for entry in entries]
    unknown = sorted(set(exclude) - set(names))
    if unknown:
        raise CaseError(f"{folder}: --exclude {', '.join(unknown)}: no structure of that name")
    ct_voxel_cc = float(np.prod(ct_spacing)) / 1000.0
    mapped = voxel_map >= 0
    structures: dict[str, Structure] = {}
    for position, (name, entry) in enumerate(zip(names, entries)):
        if name in exclude:
            not_imported.append(f"{name}: excluded on request")
            continue
        mask_zyx = _dataset(folder, entry, "structure_mask_3d_File", f"StructureSet_MetaData.json ({name})")
        if mask_zyx.shape != ct_shape:
            raise CaseError(f"{folder}: mask of '{name}' has shape {mask_zyx.shape}, the CT {ct_shape}")
        mask_zyx = mask_zyx.astype(bool)
        outside = np.count_nonzero(mask_zyx & ~mapped)
        if outside:
            not_imported.append(
                f"{name}: {outside * ct_voxel_cc:.2f} cc outside PortPy's calculation box (no dose computed there)"
            )
        inside = np.bincount(dose_of_ct, weights=mask_zyx[mapped].astype(np.float64), minlength=len(counts))
        member = inside / counts >= _MAJORITY
        if not member.any():
            raise CaseError(
                f"{folder}: structure '{name}' covers no dose voxel by half or more; exclude it with --exclude"
            )
        _note_volume(name, entry, np.count_nonzero(member) * float(np.prod(grid.spacing_mm)) / 1000.0,
                     np.count_nonzero(mask_zyx) * ct_voxel_cc, notes)
        mask = np.zeros(grid.n_voxels, dtype=bool)
        mask[flat_of_dose[member]] = True
        color = entry.get("color") if isinstance(entry.get("color"), str) else None
        structures[name] = Structure(
            name=name, mask=mask.reshape(grid.shape), color=color or _FALLBACK_COLORS[position % len(_FALLBACK_COLORS)]
        )
    return structures


def _note_volume(name: str, entry: dict, imported_cc: float, ct_cc: float, notes: list[str]) -> None:
    """A note when the dose-grid volume differs from PortPy's own by more than _VOLUME_NOTE: every tie (half of
    a dose voxel's CT voxels inside) counts in, so small structures grow (a 45 cc sphere on a 5 mm CT is 57 cc
    on 10 mm dose voxels) and every cc goal and DVH % is judged on that volume."""
    stated = entry.get("volume_cc")
    given = isinstance(stated, (int, float)) and not isinstance(stated, bool) and stated > 0
    source_cc, label = (float(stated), "PortPy's volume_cc") if given else (ct_cc, "its CT voxels")
    if source_cc > 0 and abs(imported_cc - source_cc) > _VOLUME_NOTE * source_cc:
        notes.append(
            f"{name}: {imported_cc:.2f} cc on the dose grid, {source_cc:.2f} cc by {label} "
            f"({100 * (imported_cc / source_cc - 1):+.0f}%): a dose voxel counts in when at least half of its CT "
            "voxels do; its cc goals and DVH percentages are judged on the dose-grid volume"
        )


def _beams(folder: Path, n_dose: int, notes: list[str]) -> tuple[sp.csr_matrix, list[Beam], Beamlets]:
    beams_dir = folder / "Beams"
    ids = _beam_ids(folder, beams_dir)
    matrices, beams, parts = [], [], []
    for beam_id in ids:
        label = f"Beams/Beam_{beam_id}_MetaData.json"
        meta = _json(beams_dir / f"Beam_{beam_id}_MetaData.json")
        iso = _key(meta, "iso_center", label)
        beamlet_files = _key(meta, "beamlets", label)
        x = _dataset(beams_dir, beamlet_files, "position_x_mm_File", label).ravel()
        y = _dataset(beams_dir, beamlet_files, "position_y_mm_File", label).ravel()
        width = _dataset(beams_dir, beamlet_files, "width_mm_File", label).ravel()
        height = _dataset(beams_dir, beamlet_files, "height_mm_File", label).ravel()
        if "influenceMatrixSparse_File" not in meta:
            raise CaseError(f"{beams_dir / label}: no influenceMatrixSparse_File (a geometry-only beam has no dose)")
        triplets = _dataset(beams_dir, meta, "influenceMatrixSparse_File", label)
        if triplets.ndim != 2 or triplets.shape[1] != 3:
            raise CaseError(f"{beams_dir / label}: inf_matrix_sparse must be (n, 3) triplets, got {triplets.shape}")
        rows, columns = triplets[:, 0].astype(np.int64), triplets[:, 1].astype(np.int64)
        if len(rows) and (rows.max() >= n_dose or rows.min() < 0 or columns.min() < 0 or columns.max() >= len(x)):
            raise CaseError(
                f"{beams_dir / label}: inf_matrix_sparse refers to voxel {rows.max()} or beamlet {columns.max()}, "
                f"beyond the {n_dose} optimization voxels and {len(x)} beamlets"
            )
        matrices.append(sp.csr_matrix((triplets[:, 2], (rows, columns)), shape=(n_dose, len(x))))
        beams.append(
            Beam(
                id=int(beam_id),
                gantry_deg=float(_key(meta, "gantry_angle", label)),
                couch_deg=float(meta.get("couch_angle", 0.0)),
                collimator_deg=float(meta.get("collimator_angle", 0.0)),
                isocenter_mm=(float(iso["x_mm"]), float(iso["y_mm"]), float(iso["z_mm"])),
                sad_mm=float(meta.get("SAD_mm", 1000.0)),
                energy=f"{meta['energy_MV']} MV" if "energy_MV" in meta else "unknown",
            )
        )
        parts.append(Beamlets(beam_id=np.full(len(x), int(beam_id)), x_mm=x, y_mm=y, width_mm=width, height_mm=height))
        tolerance = meta.get("influenceMatrixSparse_tol")
        if tolerance:
            notes.append(f"beam {beam_id}: PortPy dropped influence entries below {tolerance} when storing them")
    return sp.hstack(matrices, format="csr"), beams, Beamlets.concatenate(parts)


def _beam_ids(folder: Path, beams_dir: Path) -> list[int]:
    planner = folder / "PlannerBeams.json"
    if planner.exists():
        ids = _key(_json(planner), "IDs", "PlannerBeams.json")
        return [int(i) for i in ids]
    found = sorted(int(p.name.split("_")[1]) for p in beams_dir.glob("Beam_*_MetaData.json"))
    if not found:
        raise CaseError(f"{beams_dir}: no Beam_<id>_MetaData.json files")
    return found


# --- file access ---------------------------------------------------------------------------------
def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CaseError(f"{path}: missing (a PortPy patient folder has it)") from None
    except json.JSONDecodeError as error:
        raise CaseError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None


def _key(meta: Any, key: str, label: str) -> Any:
    if not isinstance(meta, dict) or key not in meta:
        raise CaseError(f"{label}: no '{key}'")
    return meta[key]


def _dataset(base: Path, meta: Any, key: str, label: str) -> np.ndarray:
    """Follow a PortPy '<file>.h5/<dataset path>' reference."""
    reference = str(_key(meta, key, label))
    file_part, _, dataset_path = reference.partition(".h5")
    path = base / f"{file_part}.h5"
    dataset_path = dataset_path.lstrip("/")
    try:
        with h5py.File(path, "r") as handle:
            if dataset_path not in handle:
                raise CaseError(f"{path}: no dataset '{dataset_path}' (referenced by {label} {key})")
            return handle[dataset_path][()]
    except OSError as error:
        raise CaseError(f"{path}: cannot read ({error}) (referenced by {label} {key})") from None
