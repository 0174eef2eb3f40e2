"""Built-in phantom cases derived from the AAPM TG-119 IMRT test geometries.

They let specc plan out of the box with no external data. Dimensions follow the TG-119
descriptions (Ezzell et al., Med. Phys. 36, 5359 (2009)); docs/phantoms.md lists them with
the few choices TG-119 leaves open. Geometry and dose are separate steps so the geometry can
be checked (volumes) without running the dose engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from specc.case.engine import PencilBeamModel, ProgressCallback, compute_influence, equispaced_beams
from specc.case.model import Case, CaseMetadata, Grid, Structure
from specc.case.shapes import (
    Box,
    CShape,
    Difference,
    EllipseWithKeepout,
    Ellipsoid,
    EllipticCylinder,
    Expansion,
    Shape,
)
from specc.errors import CaseError

WATER = 1.0
AIR = 0.001
BONE = 1.3  # relative electron density of the femoral heads (mixed cortical / trabecular bone)


def density_to_hu(density: np.ndarray) -> np.ndarray:
    """CT numbers for a phantom's densities: the importers' default HU -> density table, inverted.

    The table is increasing in both columns, so inverting it is interpolation with the
    columns swapped; re-importing the CT with that table gives back the same density.
    """
    # Imported here: the importers package loads pydicom, which geometry-only users never need.
    from specc.case.importers.hu_density import DEFAULT_HU_TABLE

    table = np.asarray(DEFAULT_HU_TABLE, dtype=np.float64)
    return np.interp(density, table[:, 1], table[:, 0]).astype(np.float32)


@dataclass(frozen=True)
class _Region:
    shape: Shape
    color: str
    density: float | None = None  # overrides water inside the body


@dataclass(frozen=True)
class PhantomSpec:
    """One phantom: its body, its structures (drawn in order) and which of them are targets."""

    name: str
    description: str
    body: Shape
    regions: dict[str, _Region]
    targets: tuple[str, ...]
    # Structures that touch by design (stacked targets): a voxel drawn in several of them
    # stays only in the one that covers most of it.
    disjoint: tuple[str, ...] = ()


def _slab(length: float) -> Box:
    """The solid-water slab of the TG-119 CT as distributed by the AAPM: 300 mm (RL) x 150 mm (AP)."""
    return Box(-150.0, 150.0, -75.0, 75.0, -length / 2, length / 2)


# Mock prostate (docs/phantoms.md gives the source of each number). The rectum, a 15 mm
# cylinder, indents the prostate's posterior aspect by 3 mm and runs 150 mm along z (the RTOG
# rectum length). It also grooves the bladder, which rests on the prostate's superior aspect
# and would otherwise share voxels with it.
_RECTUM = EllipticCylinder(0.0, 17.5, 7.5, 7.5, -75.0, 75.0)
_PROSTATE = Difference(Ellipsoid((0.0, 0.0, 0.0), (20.0, 13.0, 32.5)), _RECTUM)
_BLADDER = Difference(Ellipsoid((0.0, 0.0, 32.5 + 25.0), (25.0, 20.0, 25.0)), _RECTUM)

# Mock head and neck: superficial parotids beside the upper 40 mm of the PTV, which abuts them.
_PAROTID_L = Ellipsoid((55.0, 5.0, 20.0), (15.0, 20.0, 20.0))
_PAROTID_R = Ellipsoid((-55.0, 5.0, 20.0), (15.0, 20.0, 20.0))
_HEAD_NECK_PTV = Difference(Difference(EllipseWithKeepout(69.0, 59.0, 35.0, 20.0, -60.0, 40.0), _PAROTID_L), _PAROTID_R)

_SPECS: dict[str, PhantomSpec] = {
    spec.name: spec
    for spec in [
        PhantomSpec(
            name="c-shape",
            description="TG-119 C-shape: PTV wrapped anteriorly around a 1 cm radius, 10 cm long core with a 5 mm gap, 8 cm long",
            body=_slab(200.0),
            regions={
                "PTV": _Region(CShape(0.0, 0.0, 15.0, 37.0, 7.0, -40.0, 40.0), "#e6194b"),
                "Core": _Region(EllipticCylinder(0.0, 0.0, 10.0, 10.0, -50.0, 50.0), "#3cb44b"),
            },
            targets=("PTV",),
        ),
        PhantomSpec(
            name="multi-target",
            description="TG-119 multi-target: three 4 cm diameter x 4 cm long cylinders stacked along the patient axis",
            body=_slab(200.0),
            regions={
                "PTV_Superior": _Region(EllipticCylinder(0.0, 0.0, 20.0, 20.0, 20.0, 60.0), "#4363d8"),
                "PTV_Central": _Region(EllipticCylinder(0.0, 0.0, 20.0, 20.0, -20.0, 20.0), "#e6194b"),
                "PTV_Inferior": _Region(EllipticCylinder(0.0, 0.0, 20.0, 20.0, -60.0, -20.0), "#f58231"),
            },
            targets=("PTV_Central", "PTV_Superior", "PTV_Inferior"),
            disjoint=("PTV_Central", "PTV_Superior", "PTV_Inferior"),
        ),
        PhantomSpec(
            name="prostate",
            description="TG-119 mock prostate: prostate indented by the rectum, PTV = prostate + 6 mm, bladder resting on the prostate",
            body=_slab(200.0),
            regions={
                "PTV": _Region(Expansion(_PROSTATE, 6.0), "#e6194b"),
                "Prostate": _Region(_PROSTATE, "#911eb4"),
                "Rectum": _Region(_RECTUM, "#9a6324"),
                "Bladder": _Region(_BLADDER, "#ffe119"),
                "FemoralHead_L": _Region(Ellipsoid((95.0, 0.0, 0.0), (25.0, 25.0, 25.0)), "#46f0f0", BONE),
                "FemoralHead_R": _Region(Ellipsoid((-95.0, 0.0, 0.0), (25.0, 25.0, 25.0)), "#f032e6", BONE),
            },
            targets=("PTV",),
        ),
        PhantomSpec(
            name="head-neck",
            description="TG-119 mock head and neck: PTV 6 mm inside the skin wrapping the cord with a 15 mm gap, parotids beside it",
            body=EllipticCylinder(0.0, 0.0, 75.0, 65.0, -100.0, 100.0),
            regions={
                "PTV": _Region(_HEAD_NECK_PTV, "#e6194b"),
                "Cord": _Region(EllipticCylinder(0.0, 35.0, 5.0, 5.0, -90.0, 90.0), "#3cb44b"),
                "Parotid_L": _Region(_PAROTID_L, "#4363d8"),
                "Parotid_R": _Region(_PAROTID_R, "#f58231"),
            },
            targets=("PTV",),
        ),
    ]
}

BODY = "Body"
BODY_COLOR = "#a9a9a9"

# Name -> one-line description, for `specc phantom --list`.
PHANTOMS: dict[str, str] = {name: spec.description for name, spec in _SPECS.items()}


def phantom_spec(name: str) -> PhantomSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise CaseError(f"unknown phantom {name!r}; available: {', '.join(_SPECS)}") from None


def analytic_volumes_cc(name: str) -> dict[str, float]:
    """Exact volume of each structure of a phantom (including the body), in cc."""
    spec = phantom_spec(name)
    volumes = {region_name: region.shape.volume_mm3 / 1000.0 for region_name, region in spec.regions.items()}
    volumes[BODY] = spec.body.volume_mm3 / 1000.0
    return volumes


@dataclass(frozen=True, eq=False)
class PhantomGeometry:
    """A phantom voxelised on its dose grid, before any dose is computed."""

    grid: Grid
    structures: dict[str, Structure]
    density: np.ndarray
    targets: tuple[str, ...]


# Sub-samples per axis when estimating how much of each voxel a shape covers; odd, so a
# voxel centred on a flat boundary (as the half-open z extents are) is split evenly.
_SUBSAMPLES = 5


# A structure whose voxels are on average less covered than this is too small for the grid.
MIN_MEAN_COVERAGE = 0.5


def _coverage(shape: Shape, grid: Grid) -> np.ndarray:
    """Fraction of each voxel inside `shape`, estimated on a sub-grid of `_SUBSAMPLES`**3 points."""
    axes = grid.axes_mm()
    offsets = (np.arange(_SUBSAMPLES) - (_SUBSAMPLES - 1) / 2) / _SUBSAMPLES
    votes = np.zeros(grid.shape, dtype=np.uint16)
    for dx in offsets * grid.spacing_mm[0]:
        for dy in offsets * grid.spacing_mm[1]:
            for dz in offsets * grid.spacing_mm[2]:
                votes += shape.contains(
                    (axes[0] + dx)[:, None, None], (axes[1] + dy)[None, :, None], (axes[2] + dz)[None, None, :]
                )
    return votes / float(_SUBSAMPLES**3)


def _volume_matched_mask(coverage: np.ndarray) -> np.ndarray:
    """The voxels of highest coverage whose count equals the summed coverage (the shape's volume).

    Testing voxel centres alone would be off by tens of percent for small structures (a 1 cm
    cord) on coarse grids. Symmetric shapes on a regular grid have rings of voxels with equal
    coverage: when only part of such a ring is needed, its members are taken evenly spread
    in index order.
    """
    flat = coverage.ravel()
    wanted = int(round(float(flat.sum())))
    mask = np.zeros(flat.size, dtype=bool)
    if wanted == 0:
        return mask.reshape(coverage.shape)
    level = np.partition(flat, flat.size - wanted)[flat.size - wanted]  # coverage of the last voxel needed
    mask[flat > level] = True
    ring = np.flatnonzero(flat == level)
    needed = wanted - int(np.count_nonzero(mask))
    mask[ring[np.round(np.linspace(0, len(ring) - 1, needed)).astype(np.int64)]] = True
    return mask.reshape(coverage.shape)


def phantom_geometry(name: str, grid_mm: float = 5.0) -> PhantomGeometry:
    """Voxelise a phantom on a cubic grid of `grid_mm`, centred on the phantom.

    Structures keep their true volume as closely as the grid allows (`_volume_matched_mask`). The grid covers the
    body with at least one voxel of air around it.
    """
    spec = phantom_spec(name)
    if not (math.isfinite(grid_mm) and 0.5 <= grid_mm <= 20.0):
        raise CaseError(f"grid spacing must be between 0.5 and 20 mm, got {grid_mm}")
    half_extents = tuple(max(abs(lo), abs(hi)) for lo, hi in spec.body.bounds_mm)
    shape = tuple(2 * math.ceil(extent / grid_mm + 1) + 1 for extent in half_extents)
    grid = Grid(shape, (grid_mm,) * 3, tuple(-(n - 1) / 2 * grid_mm for n in shape))  # type: ignore[arg-type]
    body_mask = _volume_matched_mask(_coverage(spec.body, grid))
    density = np.where(body_mask, WATER, AIR).astype(np.float32)
    coverages = {region_name: _coverage(region.shape, grid) for region_name, region in spec.regions.items()}
    masks = {region_name: _volume_matched_mask(coverage) & body_mask for region_name, coverage in coverages.items()}
    if spec.disjoint:
        owner = np.argmax(np.stack([coverages[n] for n in spec.disjoint]), axis=0)
        for position, region_name in enumerate(spec.disjoint):
            masks[region_name] &= owner == position
    structures: dict[str, Structure] = {}
    for region_name, region in spec.regions.items():
        mask = masks[region_name]
        if not mask.any() or coverages[region_name][mask].mean() < MIN_MEAN_COVERAGE:
            raise CaseError(
                f"phantom {name!r}: structure {region_name!r} is too small to be drawn on a {grid_mm:g} mm grid "
                f"(its voxels would lie mostly outside it); use a finer grid"
            )
        structures[region_name] = Structure(region_name, mask, region.color)
        if region.density is not None:
            density[mask] = region.density
    structures[BODY] = Structure(BODY, body_mask, BODY_COLOR)
    return PhantomGeometry(grid, structures, density, spec.targets)


def build_phantom(
    name: str,
    beams: int = 9,
    grid_mm: float = 5.0,
    beamlet_mm: float = 5.0,
    progress: ProgressCallback | None = None,
    *,
    model: PencilBeamModel | None = None,
) -> Case:
    """A phantom case: geometry plus a pencil-beam influence matrix for `beams` coplanar beams.

    The beams are equispaced from gantry 0 with the isocentre at the centroid of the targets;
    the influence matrix has a row for every body voxel.
    """
    model = model or PencilBeamModel()
    geometry = phantom_geometry(name, grid_mm)
    target = np.zeros(geometry.grid.shape, dtype=bool)
    for target_name in geometry.targets:
        target |= geometry.structures[target_name].mask
    isocenter = geometry.grid.positions_mm(np.flatnonzero(target.ravel())).mean(axis=0)
    beam_list = equispaced_beams(beams, tuple(np.round(isocenter, 3)))
    rows = np.zeros(geometry.grid.shape, dtype=bool)
    for structure in geometry.structures.values():
        rows |= structure.mask
    influence = compute_influence(
        geometry.density,
        geometry.grid,
        beam_list,
        target,
        rows,
        beamlet_mm=beamlet_mm,
        model=model,
        progress=progress,
    )
    metadata = CaseMetadata(
        source=f"phantom:{name}",
        dose_engine=model.label,
        notes=(
            f"{PHANTOMS[name]}. Grid {grid_mm:g} mm, {beams} equispaced beams, "
            f"{beamlet_mm:g} mm beamlets, isocentre at the target centroid."
        ),
    )
    return Case(
        case_id=name,
        grid=geometry.grid,
        voxel_indices=influence.voxel_indices,
        influence=influence.matrix,
        beams=beam_list,
        beamlets=influence.beamlets,
        structures=geometry.structures,
        metadata=metadata,
        density=geometry.density,
        ct_hu=density_to_hu(geometry.density),
    )
