"""A photon pencil-beam dose engine for planning studies (not a clinical dose calculation).

It turns any relative-electron-density grid and a set of beams into an influence matrix, so
that phantoms and imported CTs plan out of the box. The model (docs/dose-engine.md):

    A[v, b] = dose_at_dmax_gy * depth_dose(d_rad(v)) * (SAD / t(v))**2 * Lx * Ly

with `d_rad` the radiological depth along the divergent ray from the source to voxel v,
`t` the distance from the source along the beam axis, and Lx, Ly the fraction of beamlet b's
square (at the isocentre plane) seen through a Gaussian penumbra whose width grows with
depth. Entries below `cutoff` times their beamlet's maximum are dropped so A stays sparse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from scipy.integrate import cumulative_trapezoid
from scipy.ndimage import binary_closing, binary_erosion, binary_fill_holes, distance_transform_edt, map_coordinates
from scipy.spatial.transform import Rotation
from scipy.special import erf, erfcinv

from specc.case.model import Beam, Beamlets, Grid
from specc.errors import CaseError

# Called after each beam with (beams done, beams in total).
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class PencilBeamModel:
    """Parameters of the 6 MV-like beam model; the defaults are documented in docs/dose-engine.md."""

    # Absolute scale: a beamlet weight of 1 gives this dose per fraction at the depth-dose
    # maximum on the isocentre plane, in water, inside a field much wider than the penumbra.
    dose_at_dmax_gy: float = 1.0
    # Depth dose (relative to its maximum) of the primary beam, without inverse square:
    # [1 - (1 - surface_dose) * exp(-d / buildup_mm)] * exp(-attenuation_per_mm * d).
    surface_dose: float = 0.25
    buildup_mm: float = 3.8
    attenuation_per_mm: float = 0.0039  # TPR20,10 = exp(-100 mu) = 0.68, the 6 MV quality index
    # Penumbra: Gaussian sigma at the depth of the voxel, sigma0 + slope * radiological depth.
    sigma_surface_mm: float = 2.5
    sigma_per_mm_depth: float = 0.015
    # Entries below this fraction of their beamlet's maximum are dropped.
    cutoff: float = 1e-3
    label: str = "specc pencil beam (6 MV-like, planning-study engine) v1"

    def __post_init__(self) -> None:
        for name in ("dose_at_dmax_gy", "buildup_mm", "attenuation_per_mm", "sigma_surface_mm"):
            if not getattr(self, name) > 0:
                raise CaseError(f"dose engine: {name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.surface_dose <= 1:
            raise CaseError(f"dose engine: surface_dose must be between 0 and 1, got {self.surface_dose}")
        if not 0 < self.cutoff < 1:
            raise CaseError(f"dose engine: cutoff must be between 0 and 1, got {self.cutoff}")
        if self.sigma_per_mm_depth < 0:
            raise CaseError("dose engine: sigma_per_mm_depth must not be negative")

    @cached_property
    def dmax_mm(self) -> float:
        """Depth of the maximum of the depth-dose curve (closed form of its zero derivative)."""
        mu_b = self.attenuation_per_mm * self.buildup_mm
        ratio = (1 - self.surface_dose) * (1 + mu_b) / mu_b
        return self.buildup_mm * math.log(ratio) if ratio > 1 else 0.0

    def _unnormalized(self, depth_mm: np.ndarray | float) -> np.ndarray:
        depth = np.maximum(np.asarray(depth_mm, dtype=np.float64), 0.0)
        build_up = 1.0 - (1.0 - self.surface_dose) * np.exp(-depth / self.buildup_mm)
        return build_up * np.exp(-self.attenuation_per_mm * depth)

    def depth_dose(self, depth_mm: np.ndarray | float) -> np.ndarray:
        """Relative dose (1 at `dmax_mm`) at radiological depth(s) in mm, without inverse square."""
        return self._unnormalized(depth_mm) / self._unnormalized(self.dmax_mm)

    def sigma_mm(self, depth_mm: np.ndarray) -> np.ndarray:
        """Penumbra Gaussian sigma (mm, in the plane of the voxel) at radiological depth(s)."""
        return self.sigma_surface_mm + self.sigma_per_mm_depth * np.maximum(depth_mm, 0.0)


@dataclass(frozen=True, eq=False)
class DensityVolume:
    """Relative electron density on a grid of its own: what the rays cross.

    An imported CT is traced at its own resolution and over its whole extent, not on the dose
    grid: the dose grid covers only the box around the contours, so tissue, couch or
    immobilisation in front of that box would otherwise be skipped, and a CT point-sampled at
    dose-grid centres moves the body surface by up to half a dose voxel (docs/dose-engine.md).

    Past its outermost voxel centres the density is vacuum, except in z by `ends_mm`: a scan
    stops inside a patient who goes on beyond it, and a dose voxel on the first or last slice
    takes its depth from rays up to half a dose voxel either side of it. With vacuum just past
    that slice's centre one of those rays crossed nothing, and the voxel got too little depth
    (+16% dose 71 mm deep in a water box). The importers continue the end slices as they are.
    """

    density: np.ndarray
    grid: Grid
    ends_mm: float = 0.0  # how far past the first and last z centres their slices continue (mm)

    def __post_init__(self) -> None:
        density = np.asarray(self.density, dtype=np.float32)
        if density.shape != self.grid.shape:
            raise CaseError(f"dose engine: density has shape {density.shape}, the grid is {self.grid.shape}")
        if not (np.isfinite(density).all() and (density >= 0).all()):
            raise CaseError("dose engine: density must be finite and non-negative")
        if not (math.isfinite(self.ends_mm) and self.ends_mm >= 0):
            raise CaseError(f"dose engine: ends_mm must be finite and non-negative, got {self.ends_mm}")
        object.__setattr__(self, "density", density)

    @cached_property
    def densest(self) -> float:
        """The highest density, which bounds every depth: taken once, not per beam over the whole CT."""
        return float(self.density.max())

    def reach_mm(self) -> np.ndarray:
        """How far past its outermost voxel centres (x, y, z) the density is not vacuum."""
        return np.array([0.0, 0.0, self.ends_mm])


@dataclass(frozen=True, eq=False)
class Influence:
    """What the engine computes: A with its rows (flat grid indices) and columns (beamlets)."""

    voxel_indices: np.ndarray
    matrix: sp.csr_matrix
    beamlets: Beamlets


@dataclass(frozen=True)
class BeamFrame:
    """A beam's geometry in patient coordinates (LPS): where the source is and its BEV axes."""

    source_mm: np.ndarray
    direction: np.ndarray  # unit vector from the source through the isocentre
    x_axis: np.ndarray  # IEC X_b at the isocentre plane
    y_axis: np.ndarray  # IEC Y_b
    sad_mm: float

    @classmethod
    def of(cls, beam: Beam) -> BeamFrame:
        """IEC 61217 rotations for a head-first supine patient (docs/dose-engine.md).

        At gantry, couch and collimator 0 the source is anterior (LPS -y), X_b points to the
        patient's left (+x) and Y_b superior (+z). The collimator turns about the axis pointing
        at the source, the gantry about +z, and the couch turns the patient about the vertical,
        which in patient coordinates turns the beam about +y.
        """
        rotation = (
            Rotation.from_rotvec(np.radians(beam.couch_deg) * np.array([0.0, 1.0, 0.0]))
            * Rotation.from_rotvec(np.radians(beam.gantry_deg) * np.array([0.0, 0.0, 1.0]))
            * Rotation.from_rotvec(np.radians(beam.collimator_deg) * np.array([0.0, -1.0, 0.0]))
        )
        to_source, x_axis, y_axis = rotation.apply(np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
        iso = np.asarray(beam.isocenter_mm, dtype=np.float64)
        return cls(iso + beam.sad_mm * to_source, -to_source, x_axis, y_axis, beam.sad_mm)

    def project(self, positions_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X, Y) at the isocentre plane of the ray through each point, and its axial distance t."""
        relative = positions_mm - self.source_mm
        t = relative @ self.direction
        if (t <= 1.0).any():
            raise CaseError("dose engine: a voxel lies at or behind the source plane; check the isocentre and SAD")
        scale = self.sad_mm / t
        return (relative @ self.x_axis) * scale, (relative @ self.y_axis) * scale, t


def equispaced_beams(
    count: int, isocenter_mm: Sequence[float], *, sad_mm: float = 1000.0, energy: str = "6 MV"
) -> list[Beam]:
    """`count` coplanar beams at gantry 0, 360/count, ... deg (ids 1..count)."""
    if count < 1:
        raise CaseError(f"the number of beams must be at least 1, got {count}")
    iso = tuple(float(c) for c in isocenter_mm)
    return [
        Beam(id=n + 1, gantry_deg=round(360.0 * n / count, 6), isocenter_mm=iso, sad_mm=sad_mm, energy=energy)  # type: ignore[arg-type]
        for n in range(count)
    ]


def compute_influence(
    density: np.ndarray | DensityVolume,
    grid: Grid,
    beams: Sequence[Beam],
    target_mask: np.ndarray,
    rows_mask: np.ndarray,
    *,
    beamlet_mm: float = 5.0,
    margin_mm: float = 5.0,
    model: PencilBeamModel | None = None,
    progress: ProgressCallback | None = None,
) -> Influence:
    """Influence matrix of `beams` on the voxels of `rows_mask`, Gy per unit weight per fraction.

    `density` is what the rays cross: an array on `grid`, or a `DensityVolume` on a grid of
    its own (an imported CT at its resolution and extent); beyond it is vacuum. Each beam gets
    square beamlets of `beamlet_mm` (at the isocentre plane) on a grid whose lines pass through
    the beam axis, covering the projection of `target_mask` dilated by `margin_mm`. Columns are
    ordered by beam, then by BEV row (y), then x.
    """
    model = model or PencilBeamModel()
    traced = density if isinstance(density, DensityVolume) else DensityVolume(density, grid)
    for name, array in (("target_mask", target_mask), ("rows_mask", rows_mask)):
        if np.shape(array) != grid.shape:
            raise CaseError(f"dose engine: {name} has shape {np.shape(array)}, the grid is {grid.shape}")
    if not np.any(target_mask):
        raise CaseError("dose engine: the target mask is empty, there is nothing to aim the beamlets at")
    if not beamlet_mm > 0 or margin_mm < 0:
        raise CaseError(f"dose engine: beamlet_mm must be positive and margin_mm >= 0, got {beamlet_mm}, {margin_mm}")
    ids = [beam.id for beam in beams]
    if len(set(ids)) != len(ids):
        raise CaseError(f"dose engine: beam ids must be unique, got {ids}")

    voxel_indices = np.flatnonzero(np.asarray(rows_mask, dtype=bool).ravel()).astype(np.int64)
    positions = grid.positions_mm(voxel_indices)
    target_points = filling_points(np.asarray(target_mask, dtype=bool), grid, beamlet_mm / _RASTER_PER_BEAMLET)

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    beamlet_parts: list[Beamlets] = []
    n_columns = 0
    for done, beam in enumerate(beams, start=1):
        frame = BeamFrame.of(beam)
        cells = _beamlet_cells(frame, target_points, beamlet_mm, margin_mm)
        rows, columns, values = _beam_entries(frame, cells, beamlet_mm, positions, traced, grid, model)
        iy, ix = np.nonzero(cells.open)
        beamlet_parts.append(
            Beamlets(
                beam_id=np.full(len(ix), beam.id),
                x_mm=(cells.ix0 + ix + 0.5) * beamlet_mm,
                y_mm=(cells.iy0 + iy + 0.5) * beamlet_mm,
                width_mm=np.full(len(ix), float(beamlet_mm)),
                height_mm=np.full(len(ix), float(beamlet_mm)),
            )
        )
        parts.append((rows, columns + n_columns, values))
        n_columns += len(ix)
        if progress is not None:
            progress(done, len(beams))

    rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int32)
    columns = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int32)
    values = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.float32)
    del parts
    matrix = sp.csr_matrix((values, (rows, columns)), shape=(len(voxel_indices), n_columns), dtype=np.float32)
    return Influence(voxel_indices, matrix, Beamlets.concatenate(beamlet_parts))


@dataclass(frozen=True)
class _Cells:
    """The open beamlets of one beam: a boolean map over BEV cells [iy, ix] with its offset."""

    open: np.ndarray
    ix0: int
    iy0: int

    def columns(self) -> np.ndarray:
        """Column number (within the beam) of each cell, -1 where closed."""
        numbers = np.full(self.open.shape, -1, dtype=np.int64)
        numbers[self.open] = np.arange(np.count_nonzero(self.open))
        return numbers


# The target's beam's-eye-view projection is rasterised at this many pixels per beamlet
# width (odd, so beamlet centres are pixel centres): beamlet selection is exact to 1/5 of a beamlet.
_RASTER_PER_BEAMLET = 5


def filling_points(target: np.ndarray, grid: Grid, spacing_mm: float) -> np.ndarray:
    """Points filling the target voxels (as cubes) no further apart than `spacing_mm`.

    Interior voxels contribute their centre only (their neighbours cover them); boundary
    voxels are sampled on a lattice including their faces, so the projection of the points
    is the projection of the voxelised target, edges included.
    """
    boundary = target & ~binary_erosion(target)
    interior_points = grid.positions_mm(np.flatnonzero((target & ~boundary).ravel()))
    spacing = np.asarray(grid.spacing_mm)
    counts = np.ceil(spacing / spacing_mm).astype(int) + 1
    offsets = np.stack(
        np.meshgrid(*(np.linspace(-0.5, 0.5, n) * s for n, s in zip(counts, spacing)), indexing="ij"), axis=-1
    ).reshape(-1, 3)
    boundary_points = grid.positions_mm(np.flatnonzero(boundary.ravel()))[:, None, :] + offsets[None, :, :]
    return np.concatenate([interior_points, boundary_points.reshape(-1, 3)])


def _beamlet_cells(frame: BeamFrame, target_points: np.ndarray, beamlet_mm: float, margin_mm: float) -> _Cells:
    """The beamlets whose central ray passes within `margin_mm` of the target (at the isocentre plane).

    The projected target is rasterised at `beamlet_mm / _RASTER_PER_BEAMLET` (closed and
    hole-filled so the sampled points form one region) and its Euclidean distance map decides
    each beamlet by its centre.
    """
    x, y, _ = frame.project(target_points)
    pixel = beamlet_mm / _RASTER_PER_BEAMLET
    pad = int(math.ceil(margin_mm / beamlet_mm)) + 1
    ix0 = int(np.floor(x.min() / beamlet_mm)) - pad
    iy0 = int(np.floor(y.min() / beamlet_mm)) - pad
    nx = int(np.floor(x.max() / beamlet_mm)) + pad + 1 - ix0
    ny = int(np.floor(y.max() / beamlet_mm)) + pad + 1 - iy0
    projection = np.zeros((ny * _RASTER_PER_BEAMLET, nx * _RASTER_PER_BEAMLET), dtype=bool)
    projection[
        np.floor(y / pixel).astype(np.int64) - iy0 * _RASTER_PER_BEAMLET,
        np.floor(x / pixel).astype(np.int64) - ix0 * _RASTER_PER_BEAMLET,
    ] = True
    projection = binary_fill_holes(binary_closing(projection, structure=np.ones((3, 3), bool)))
    distance_mm = distance_transform_edt(~projection, sampling=pixel)
    centre = _RASTER_PER_BEAMLET // 2
    at_centres = distance_mm[centre::_RASTER_PER_BEAMLET, centre::_RASTER_PER_BEAMLET]
    return _Cells(at_centres <= margin_mm + 1e-9, ix0, iy0)


def _beam_entries(
    frame: BeamFrame,
    cells: _Cells,
    beamlet_mm: float,
    positions: np.ndarray,
    traced: DensityVolume,
    grid: Grid,
    model: PencilBeamModel,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value) of one beam's entries above the cut-off (`grid`: the dose grid of `positions`)."""
    x, y, t = frame.project(positions)
    # Rows that any beamlet can reach: bound the penumbra by the deepest possible depth.
    prefilter = 0.1 * model.cutoff
    reach_per_sigma = math.sqrt(2.0) * float(erfcinv(2.0 * prefilter))
    extent = np.asarray(traced.grid.shape) * np.asarray(traced.grid.spacing_mm) + 2.0 * traced.reach_mm()
    deepest = float(np.linalg.norm(extent)) * traced.densest
    sigma_bound = float(model.sigma_mm(np.array(deepest))) * frame.sad_mm / float(t.min())
    reach = 0.5 * beamlet_mm + reach_per_sigma * sigma_bound
    x_lo, x_hi = cells.ix0 * beamlet_mm - reach, (cells.ix0 + cells.open.shape[1]) * beamlet_mm + reach
    y_lo, y_hi = cells.iy0 * beamlet_mm - reach, (cells.iy0 + cells.open.shape[0]) * beamlet_mm + reach
    candidates = np.flatnonzero((x > x_lo) & (x < x_hi) & (y > y_lo) & (y < y_hi))
    if len(candidates) == 0:
        return np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32)
    x, y, t = x[candidates], y[candidates], t[candidates]
    depth = _radiological_depth(frame, x, y, t, traced, 0.5 * min(grid.spacing_mm))

    # Cells around a voxel that its penumbra reaches, now from the actual depths.
    sigma_iso = model.sigma_mm(depth) * frame.sad_mm / t
    reach = 0.5 * beamlet_mm + reach_per_sigma * float(sigma_iso.max())
    pad = int(math.ceil(reach / beamlet_mm)) + 1
    window = np.arange(-pad + 1, pad)
    columns_of_cell = np.pad(cells.columns(), pad, constant_values=-1)
    central = model.dose_at_dmax_gy * model.depth_dose(depth) * (frame.sad_mm / t) ** 2
    # Lateral factor at a beamlet's centre: the pre-filter is relative to it, like the cut-off.
    lateral_peak = erf(0.5 * beamlet_mm / (math.sqrt(2.0) * sigma_iso)) ** 2
    rows_out, columns_out, values_out = [], [], []
    for start in range(0, len(candidates), _ROW_BLOCK):
        block = slice(start, start + _ROW_BLOCK)
        cx = np.floor(x[block] / beamlet_mm).astype(np.int64)
        cy = np.floor(y[block] / beamlet_mm).astype(np.int64)
        gx = cx[:, None] + window[None, :]  # cell indices around each voxel
        gy = cy[:, None] + window[None, :]
        lx = _edge_fraction(x[block, None] - (gx + 0.5) * beamlet_mm, beamlet_mm, sigma_iso[block, None])
        ly = _edge_fraction(y[block, None] - (gy + 0.5) * beamlet_mm, beamlet_mm, sigma_iso[block, None])
        lateral = ly[:, :, None] * lx[:, None, :]  # [voxel, y offset, x offset]
        column = columns_of_cell[
            np.clip(gy - cells.iy0 + pad, 0, columns_of_cell.shape[0] - 1)[:, :, None],
            np.clip(gx - cells.ix0 + pad, 0, columns_of_cell.shape[1] - 1)[:, None, :],
        ]
        keep = (column >= 0) & (lateral >= prefilter * lateral_peak[block, None, None])
        voxel, _, _ = np.nonzero(keep)
        rows_out.append(candidates[block][voxel])
        columns_out.append(column[keep])
        values_out.append((central[block][voxel] * lateral[keep]).astype(np.float32))
    rows = np.concatenate(rows_out)
    columns = np.concatenate(columns_out)
    values = np.concatenate(values_out)
    # Exact relative cut-off against each beamlet's maximum.
    beamlet_max = np.zeros(np.count_nonzero(cells.open), dtype=np.float32)
    np.maximum.at(beamlet_max, columns, values)
    keep = values >= model.cutoff * beamlet_max[columns]
    # int32 indices halve the memory of the assembled matrix (row and column counts fit).
    return rows[keep].astype(np.int32), columns[keep].astype(np.int32), values[keep]


_ROW_BLOCK = 8192


def _edge_fraction(offset_mm: np.ndarray, width_mm: float, sigma_mm: np.ndarray) -> np.ndarray:
    """Fraction of a 1-D uniform strip of `width_mm` seen at `offset_mm` from its centre through a Gaussian blur."""
    scale = 1.0 / (math.sqrt(2.0) * sigma_mm)
    return 0.5 * (erf((0.5 * width_mm - offset_mm) * scale) + erf((0.5 * width_mm + offset_mm) * scale))


def _radiological_depth(
    frame: BeamFrame, x: np.ndarray, y: np.ndarray, t: np.ndarray, traced: DensityVolume, lattice_mm: float
) -> np.ndarray:
    """Water-equivalent depth (mm) from the source to each point along its divergent ray.

    Rays are traced once on a regular (X, Y, t) lattice in beam coordinates, `lattice_mm` apart
    (half the dose voxel), and the points interpolate in that lattice, so the cost grows with
    the field size, not with the number of voxels. Along each ray the density is sampled
    trilinearly at half the traced grid's smallest voxel (or finer), from where the ray enters
    that grid: the depth at each lattice point is the integral over the density's own
    resolution, so a surface stays where the density puts it, not at a dose-grid centre.
    """
    volume = traced.grid
    spacing = np.asarray(volume.spacing_mm)
    origin = np.asarray(volume.origin_mm)
    substeps = max(1, math.ceil(lattice_mm / (0.5 * float(spacing.min()))))
    further = np.maximum(traced.reach_mm() - 0.5 * spacing, 0.0)  # past the faces, where the density reaches
    lower = origin - 0.5 * spacing - further
    upper = origin - 0.5 * spacing + np.asarray(volume.shape) * spacing + further
    corners = np.array([[a, b, c] for a in (lower[0], upper[0]) for b in (lower[1], upper[1]) for c in (lower[2], upper[2])])
    t_start = max(float(((corners - frame.source_mm) @ frame.direction).min()), 1.0)
    xs = np.arange(x.min() - lattice_mm, x.max() + 2 * lattice_mm, lattice_mm)
    ys = np.arange(y.min() - lattice_mm, y.max() + 2 * lattice_mm, lattice_mm)
    ts = np.arange(t_start, t.max() + 2 * lattice_mm, lattice_mm)
    fine_ts = t_start + (lattice_mm / substeps) * np.arange((len(ts) - 1) * substeps + 1)

    depth = np.empty((len(xs), len(ys), len(ts)), dtype=np.float32)
    rays_per_block = max(1, _SAMPLES_PER_BLOCK // (len(ys) * len(fine_ts)))
    for start in range(0, len(xs), rays_per_block):
        bx, by = np.meshgrid(xs[start : start + rays_per_block], ys, indexing="ij")
        # Direction of each ray per unit of axial distance t, and its length per unit t.
        slope = frame.direction + (bx[..., None] * frame.x_axis + by[..., None] * frame.y_axis) / frame.sad_mm
        stretch = np.linalg.norm(slope, axis=-1)
        points = frame.source_mm + slope[:, :, None, :] * fine_ts[None, None, :, None]
        index = ((points - origin) / spacing).reshape(-1, 3).T
        if traced.ends_mm > 0:
            _onto_end_slices(index[2], traced.ends_mm / float(spacing[2]), volume.shape[2] - 1)
        samples = map_coordinates(traced.density, index, order=1, mode="constant", cval=0.0).reshape(points.shape[:3])
        along = cumulative_trapezoid(samples, fine_ts, axis=-1, initial=0.0)[..., ::substeps]
        depth[start : start + rays_per_block] = along * stretch[..., None]
    lattice = np.stack([(x - xs[0]) / lattice_mm, (y - ys[0]) / lattice_mm, (t - ts[0]) / lattice_mm])
    return map_coordinates(depth, lattice, order=1, mode="nearest")


_SAMPLES_PER_BLOCK = 1 << 21


def _onto_end_slices(z_index: np.ndarray, reach: float, last: int) -> None:
    """Move z indices up to `reach` slices past the first or last slice onto it (in place): those slices continue."""
    z_index[(z_index < 0) & (z_index >= -reach)] = 0.0
    z_index[(z_index > last) & (z_index <= last + reach)] = last
