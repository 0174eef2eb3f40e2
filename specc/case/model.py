"""The patient case every later stage plans against: grid, influence matrix, beams, structures.

A `Case` is validated when it is built, whoever builds it (the HDF5 reader, a phantom, an
importer), so later stages can trust its shapes and never re-check them. Errors are
`CaseError`s naming the field; the file reader adds the file and dataset.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
import typing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from specc.case.prior import PriorDose
from specc.case.products import RowBlocks
from specc.errors import CaseError

_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")

# Lowest CT number accepted: air is -1000 HU; 12-bit scanners store down to -1024.
MIN_HU = -1024.0

# Voxel sizes a dose grid can have, mm. Clinical grids are 1-5 mm, the finest (small-animal
# irradiators') about 0.1 mm; below 0.05 mm a spacing is a unit slip (any grid up to 50 mm
# written in metres: 10 mm is 0.01) or damage (1e-300). Above 1000 mm one voxel is larger than
# any patient (2.5 mm written in micrometres is 2500).
SPACING_RANGE_MM = (0.05, 1000.0)

# How far one beamlet's peak (its column's highest entry) may lie above the median beamlet's peak.
# A beamlet's peak is the dose per unit weight where it enters the rows, and one case's beamlets
# are one engine's beamlets of one size: their peaks differ by physics alone (inverse square across
# the patient, attenuation and tissue density before the rows begin, a proton spot's energy),
# within 10-100x. Beamlets placed over the targets' projection (matRad, PortPy, the phantoms) reach
# the rows, so the median beamlet's peak is such a peak; edge and grazing beamlets peak lower, and
# a low peak is never refused. 10^4 leaves 100x beyond the physics. A peak above it is damage: an
# uninitialised or bit-flipped value, a block of beamlets written in another unit (10^6 for uGy or
# for dose per particle instead of per 10^6 particles). The median stands while at most half the
# beamlets are damaged; damage to more than half of them at once cannot be told from a choice of unit.
MAX_PEAK_OVER_MEDIAN_PEAK = 1e4
# How far one beamlet's peak may lie above its own top-tenth entry (the value a tenth of its entries lie
# above). A beamlet's dose is continuous in space: its peak voxel has neighbours of comparable dose, and
# its penumbra and scatter fall smoothly, so the tenth of its entries nearest its peak in value are its
# core and near surroundings. The phantoms (tails cut at 10^-3 of the peak) put that entry up to 11x below
# the peak; stored without a cutoff it moves out with the stored extent: a photon beamlet's near scatter
# lies 10^-2-10^-3 below the peak (up to 10^3.9 with a 10^-3 scatter tail over a 30 cm patient), a lateral
# Gaussian stored to float32's smallest values (1.4e-45) puts its top tenth at 1.4e-45^0.1 = 10^-4.5 of its
# peak, and a spot spreading alike in all three directions (a point kernel on a coarse grid, stored to that
# value: its entries within a radius grow with its cube) at 1.4e-45^(0.1^(2/3)) = 10^-9.7, the most any dose
# stored in float32 gives for a Gaussian fall-off (audit d1 measured 10^6.3 on a sigma-3 mm spot on a 10 mm grid).
# 10^10 stays above it. A fall-off slower than a Gaussian's (exponential) stored far below any dose it carries
# goes further: to 10^-10 of its peak 10^4.6 in three directions, to 10^-20 10^9.3, to float32's floor 10^21
# (review R3 F3): a matrix storing such tails below 10^-20 of their peaks is refused (its error says why). A peak beyond stands alone above its own beamlet: damaged entries (a flipped exponent bit multiplies a
# value by 2^32-2^128, uninitialised memory or garbage reads 10^20-10^38) spread over any number of
# beamlets, with no yardstick the damage itself lifts, whatever the cutoff. A share of entries multiplied by
# less (10^6-10^9: no known corruption does that to scattered entries; a unit slip takes whole beams, the
# first rule's) is not told from such a spread.
MAX_PEAK_OVER_TOP_TENTH = 1e10
# The share of a beamlet's entries at or above the value its peak is measured against.
_TOP_SHARE = 0.1
# Entries read for the first look at every beamlet's top tenth: evenly strided, so a 10^9-entry matrix
# costs no copy; beamlets it cannot clear are then counted on all their entries.
_ENTRY_SAMPLE = 1_000_000
# Sampled entries below which a beamlet's sample says nothing about its top tenth.
_SAMPLED_TO_SAY = 50
# Beamlets an error names of those it finds damaged.
_NAMED_BEAMLETS = 5


@dataclass(frozen=True)
class Grid:
    """A regular dose grid in DICOM patient coordinates (LPS, mm).

    `origin_mm` is the centre of voxel (0, 0, 0); arrays on the grid have shape `shape` and
    are indexed [i, j, k] = (x, y, z); flat indices are C order (`i*ny*nz + j*nz + k`).
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        spacing = tuple(float(s) for s in self.spacing_mm)
        origin = tuple(float(o) for o in self.origin_mm)
        if len(shape) != 3 or min(shape) < 1:
            raise CaseError(f"grid shape must be three positive integers, got {_numbers(shape)}")
        if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise CaseError(f"grid spacing_mm must be three positive numbers, got {_numbers(spacing)}")
        low, high = SPACING_RANGE_MM
        if not all(low <= s <= high for s in spacing):
            raise CaseError(
                f"grid spacing_mm {_numbers(spacing)} is not a dose grid's voxel size: it must lie within "
                f"{low:g}-{high:g} mm (a spacing written in metres or micrometres instead of mm, or a damaged value)"
            )
        if len(origin) != 3 or not all(math.isfinite(o) for o in origin):
            raise CaseError(f"grid origin_mm must be three finite numbers, got {_numbers(origin)}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_mm", origin)

    @property
    def n_voxels(self) -> int:
        return math.prod(self.shape)

    @property
    def voxel_volume_cc(self) -> float:
        return math.prod(self.spacing_mm) / 1000.0

    def axes_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre coordinates along x, y and z."""
        return tuple(  # type: ignore[return-value]
            o + s * np.arange(n) for o, s, n in zip(self.origin_mm, self.spacing_mm, self.shape)
        )

    def centre_mm(self, mask: np.ndarray) -> tuple[float, float, float]:
        """The mean position of a mask's voxel centres (LPS mm): where beams aim, where rotations turn."""
        x, y, z = self.positions_mm(np.flatnonzero(np.asarray(mask).ravel())).mean(axis=0)
        return (float(x), float(y), float(z))

    def positions_mm(self, flat_indices: np.ndarray) -> np.ndarray:
        """Voxel-centre positions (n, 3) in mm of the given flat indices."""
        ijk = np.stack(np.unravel_index(np.asarray(flat_indices, dtype=np.int64), self.shape), axis=1)
        return np.asarray(self.origin_mm) + ijk * np.asarray(self.spacing_mm)


class GridSize(typing.Protocol):
    """What `grid_text` reads of a grid: a `Grid`, or a plan record's grid (`specc.evaluate.record.GridInfo`)."""

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def spacing_mm(self) -> tuple[float, float, float]: ...


def grid_text(grid: GridSize) -> str:
    """A grid in words, '40 × 30 × 20 voxels of 5 × 5 × 2.5 mm', one wording wherever specc names the grids a dose
    is measured, interpolated or compared on."""
    return f"{' × '.join(str(n) for n in grid.shape)} voxels of {' × '.join(f'{s:g}' for s in grid.spacing_mm)} mm"


def _numbers(values: tuple[float, ...] | tuple[int, ...]) -> str:
    """'(10, 0, 10)': numbers as a reader writes them (no `np.float64(...)` of a repr)."""
    return "(" + ", ".join(f"{value:g}" for value in values) + ")"


@dataclass(frozen=True)
class Beam:
    """A treatment beam; angles follow IEC 61217 for a head-first supine patient."""

    id: int
    gantry_deg: float
    couch_deg: float = 0.0
    collimator_deg: float = 0.0
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sad_mm: float = 1000.0
    energy: str = "6 MV"

    def __post_init__(self) -> None:
        iso = tuple(float(c) for c in self.isocenter_mm)
        if len(iso) != 3 or not all(math.isfinite(c) for c in iso):
            raise CaseError(f"beam {self.id}: isocenter_mm must be three finite numbers, got {self.isocenter_mm}")
        for name in ("gantry_deg", "couch_deg", "collimator_deg"):
            if not math.isfinite(getattr(self, name)):
                raise CaseError(f"beam {self.id}: {name} must be finite")
        if not (math.isfinite(self.sad_mm) and self.sad_mm > 0):
            raise CaseError(f"beam {self.id}: sad_mm must be positive, got {self.sad_mm}")
        object.__setattr__(self, "id", int(self.id))
        object.__setattr__(self, "isocenter_mm", iso)
        for name in ("gantry_deg", "couch_deg", "collimator_deg", "sad_mm"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True, eq=False)
class Beamlets:
    """One entry per influence-matrix column: its beam and its square in beam's-eye view.

    Positions are the beamlet centre at the isocentre plane in the collimator frame (mm):
    x along IEC X_b (patient left at gantry/collimator 0), y along IEC Y_b (towards the gantry).
    """

    beam_id: np.ndarray
    x_mm: np.ndarray
    y_mm: np.ndarray
    width_mm: np.ndarray
    height_mm: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "beam_id", np.asarray(self.beam_id, dtype=np.int64))
        for name in ("x_mm", "y_mm", "width_mm", "height_mm"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        n = len(self.beam_id)
        for name in ("beam_id", "x_mm", "y_mm", "width_mm", "height_mm"):
            values = getattr(self, name)
            if values.ndim != 1 or len(values) != n:
                raise CaseError(f"beamlets.{name} must be a 1-D array of length {n}, got shape {values.shape}")
        for name in ("x_mm", "y_mm"):
            if not np.isfinite(getattr(self, name)).all():
                raise CaseError(f"beamlets.{name} contains NaN or Inf")
        for name in ("width_mm", "height_mm"):
            values = getattr(self, name)
            if not (np.isfinite(values).all() and (values > 0).all()):
                raise CaseError(f"beamlets.{name} must be positive and finite")

    @cached_property
    def neighbour_differences(self) -> sp.csr_matrix:
        """Sparse differences between adjacent beamlets of each beam (for smoothness terms).

        Built on first use: a case whose beamlets are not on a regular grid plans fine
        without smoothness and raises CaseError only when a smoothness term asks.
        """
        from specc.case.neighbours import neighbour_differences

        return neighbour_differences(self.beam_id, self.x_mm, self.y_mm, self.width_mm, self.height_mm)

    def __len__(self) -> int:
        return len(self.beam_id)

    def of_beam(self, beam_id: int) -> np.ndarray:
        """Column indices of the beamlets of one beam."""
        return np.flatnonzero(self.beam_id == beam_id)

    @classmethod
    def concatenate(cls, parts: list[Beamlets]) -> Beamlets:
        if not parts:
            return cls(*(np.empty(0) for _ in range(5)))
        return cls(
            *(np.concatenate([getattr(p, n) for p in parts]) for n in ("beam_id", "x_mm", "y_mm", "width_mm", "height_mm"))
        )


@dataclass(frozen=True, eq=False)
class Structure:
    """A named region of interest as a boolean mask on the dose grid."""

    name: str
    mask: np.ndarray
    color: str = "#ff0000"

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise CaseError(f"structure name {self.name!r} must be non-empty without surrounding spaces")
        if not _COLOR_RE.match(self.color):
            raise CaseError(f"structure {self.name!r}: color must be '#rrggbb', got {self.color!r}")
        mask = np.asarray(self.mask)
        if mask.dtype != bool:
            raise CaseError(f"structure {self.name!r}: mask must be boolean, got {mask.dtype}")
        object.__setattr__(self, "mask", mask)

    @property
    def n_voxels(self) -> int:
        return int(np.count_nonzero(self.mask))

    def __repr__(self) -> str:
        # the mask in full would flood a notebook; its size says what a reader wants at a glance
        return f"Structure({self.name!r}, {self.n_voxels} voxels, color={self.color!r})"


# `metadata.extra[BEAMLET_POSITIONS] == "unknown"`: the source gave no beamlet positions and the
# importer laid the beamlets out itself, so nothing that needs the real beam's-eye view
# (MLC segments) may use them.
BEAMLET_POSITIONS = "beamlet_positions"


def row_lookup(voxel_indices: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each flat grid index is a row of an influence matrix over `voxel_indices`
    (strictly increasing), and the row it is where it is one."""
    rows = np.searchsorted(voxel_indices, flat)
    found = rows < len(voxel_indices)
    found[found] = voxel_indices[rows[found]] == flat[found]
    return found, rows


@dataclass
class CaseMetadata:
    """Where a case came from. `extra` holds importer identifiers (e.g. DICOM UIDs) for export."""

    source: str
    dose_engine: str
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.extra.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise CaseError(f"metadata.extra must map strings to strings, got {key!r}: {value!r}")

    @property
    def beamlet_positions_known(self) -> bool:
        return self.extra.get(BEAMLET_POSITIONS) != "unknown"


@dataclass(eq=False)
class Case:
    """A patient (or phantom) ready to plan on.

    `influence` rows are the grid voxels listed in `voxel_indices` (strictly increasing flat
    indices); columns are `beamlets`; entries are Gy per unit beamlet weight per fraction.
    Every voxel of every structure is a row. A case is validated once, when made, and keeps what it
    derives from its content (its beamlets' peaks, its row blocks, its content hash): make another with
    `dataclasses.replace` rather than reassigning its fields.
    """

    case_id: str
    grid: Grid
    voxel_indices: np.ndarray
    influence: sp.csr_matrix
    beams: list[Beam]
    beamlets: Beamlets
    structures: dict[str, Structure]
    metadata: CaseMetadata
    density: np.ndarray | None = None
    # CT numbers (HU) on the dose grid, for report images and for recomputing density with
    # another calibration; optional because influence-matrix sources may carry no CT.
    ct_hu: np.ndarray | None = None
    # A dose delivered before the plan (specc.case.prior): a plan's goals are then on the
    # composite. Set for one plan (`with_prior`), never stored in the case file nor part of
    # its content hash: the plan records it with its own SHA-256.
    prior_dose: PriorDose | None = None

    def __post_init__(self) -> None:
        _validate(self)

    def __repr__(self) -> str:
        # one line, not every mask and array in full (a notebook shows repr(case))
        grid = self.grid
        return (
            f"Case({self.case_id!r}, grid {'x'.join(map(str, grid.shape))} at {_numbers(grid.spacing_mm)} mm, "
            f"influence {self.influence.shape[0]} rows x {self.n_beamlets} beamlets ({self.influence.nnz} nonzeros), "
            f"{len(self.beams)} beams, structures {list(self.structures)})"
        )

    # --- file format -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Case:
        from specc.case.hdf5 import read_case

        return read_case(path)

    def save(self, path: str | Path) -> None:
        from specc.case.hdf5 import write_case

        write_case(self, path)

    def with_prior(self, prior: PriorDose | None) -> Case:
        """This case with a prior dose (or without one, for None) for the plan made on it.

        A shallow copy: the rest of the case was validated when it was built, so only the prior is."""
        if prior is not None:
            _validate_prior(prior, self.grid)
        copied = copy.copy(self)
        copied.prior_dose = prior
        return copied

    # --- derived quantities ------------------------------------------------------------
    @property
    def n_beamlets(self) -> int:
        return self.influence.shape[1]

    @property
    def voxel_volume_cc(self) -> float:
        return self.grid.voxel_volume_cc

    def rows(self, mask: np.ndarray) -> np.ndarray:
        """Influence-matrix row of each voxel of a grid mask (in flat-index order)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.grid.shape:
            raise CaseError(f"mask shape {mask.shape} does not match the case grid {self.grid.shape}")
        found, rows = row_lookup(self.voxel_indices, np.flatnonzero(mask.ravel()))
        if not found.all():
            raise CaseError(
                f"{np.count_nonzero(~found)} voxels of the mask are not rows of the influence matrix "
                f"of case {self.case_id!r} (no dose is computed there)"
            )
        return rows.astype(np.int64)

    def grid_indices(self, rows: np.ndarray) -> np.ndarray:
        """(n, 3) grid indices of influence-matrix rows, in the grid's axis order."""
        return np.column_stack(np.unravel_index(self.voxel_indices[rows], self.grid.shape))

    def dose_on_grid(self, fluence: np.ndarray, fractions: int) -> np.ndarray:
        """Total dose in Gy on the full grid for beamlet weights `fluence` (zero off the rows)."""
        fluence = np.asarray(fluence, dtype=np.float64)
        if fluence.shape != (self.n_beamlets,):
            raise CaseError(f"fluence has shape {fluence.shape}, the case has {self.n_beamlets} beamlets")
        if int(fractions) != fractions or fractions < 1:
            raise CaseError(f"fractions must be a positive integer, got {fractions}")
        dose = np.zeros(self.grid.n_voxels, dtype=np.float64)
        # A float32 matrix times a float64 vector makes scipy upcast every stored value at
        # once (as large as A itself); row blocks bound that copy without changing the sums,
        # and run on threads (`specc.case.products`).
        dose[self.voxel_indices] = self._row_blocks.forward(fluence) * int(fractions)
        return dose.reshape(self.grid.shape)

    @cached_property
    def _row_blocks(self) -> RowBlocks:
        return RowBlocks(self.influence)

    @cached_property
    def beamlet_peaks(self) -> np.ndarray:
        """Each beamlet's (column's) largest entry: what the validation judges damage by, and whether it gives
        any voxel a dose. One pass over A, kept: the compile's reach notes read it again (a second pass was
        0.13 s of the large benchmark case's compile)."""
        return beamlet_peaks(self.influence)

    @property
    def beamlets_with_dose(self) -> np.ndarray:
        """Whether each beamlet (column) gives any voxel a dose above 0."""
        return self.beamlet_peaks > 0

    def content_hash(self) -> str:
        """sha256 of the planning content (grid, matrix, beams, structures, density, CT).

        Metadata (creation time, notes) is left out, so rebuilding the same phantom gives
        the same hash and a report can prove which data it was planned on.
        """
        return self._content_sha256

    @cached_property
    def _content_sha256(self) -> str:
        """`content_hash`, kept like the other things a case derives from its content: loading checks it against
        the file, the plan record, the result file and its check name it again, and each pass over the large
        benchmark case's 258 MB took 0.15 s (docs/performance-history.md, twenty-fourth pass)."""
        digest = hashlib.sha256()

        def add(label: str, values: np.ndarray | str) -> None:
            digest.update(label.encode())
            if isinstance(values, str):
                digest.update(values.encode())
            else:
                array = np.ascontiguousarray(values)
                digest.update(f"{array.dtype.str}{array.shape}".encode())
                digest.update(memoryview(array).cast("B"))

        add("grid", np.array([*self.grid.shape, *self.grid.spacing_mm, *self.grid.origin_mm], dtype=np.float64))
        add("voxel_indices", self.voxel_indices)
        add("influence.shape", np.array(self.influence.shape, dtype=np.int64))
        add("influence.indptr", self.influence.indptr.astype(np.int64, copy=False))
        add("influence.indices", self.influence.indices.astype(np.int32, copy=False))
        add("influence.data", self.influence.data)
        for beam in self.beams:
            add("beam", repr((beam.id, beam.gantry_deg, beam.couch_deg, beam.collimator_deg,
                              beam.isocenter_mm, beam.sad_mm, beam.energy)))
        for name in ("beam_id", "x_mm", "y_mm", "width_mm", "height_mm"):
            add(f"beamlets.{name}", getattr(self.beamlets, name))
        for name in sorted(self.structures):
            structure = self.structures[name]
            add("structure", f"{name}\0{structure.color}")
            add("mask", np.packbits(structure.mask.ravel()))
        if self.density is not None:
            add("density", self.density)
        if self.ct_hu is not None:
            add("ct_hu", self.ct_hu)
        return digest.hexdigest()


class InfluenceValueError(CaseError):
    """The influence matrix's entries are no dose a case can hold (not finite, negative, none above 0, damaged).
    `issue` says what, without a subject, so that the HDF5 reader, which leaves these checks to the Case's
    validation (one pass over the entries per load), can name the dataset they were read from."""

    def __init__(self, issue: str) -> None:
        super().__init__(f"influence {issue}")
        self.issue = issue


def _validate(case: Case) -> None:
    """Check the invariants later stages rely on; raise `CaseError` naming the field."""
    if not case.case_id:
        raise CaseError("case_id must not be empty")
    grid = case.grid
    indices = np.asarray(case.voxel_indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise CaseError(f"voxel_indices must be a 1-D integer array, got {indices.dtype} {indices.shape}")
    case.voxel_indices = indices = indices.astype(np.int64, copy=False)
    if len(indices) and (indices[0] < 0 or indices[-1] >= grid.n_voxels):
        raise CaseError(
            f"voxel_indices out of range: the grid has {grid.n_voxels} voxels (flat indices 0..{grid.n_voxels - 1})"
            f"{one_based_hint(indices[-1] == grid.n_voxels)}"
        )
    if len(indices) > 1 and not (np.diff(indices) > 0).all():
        raise CaseError("voxel_indices must be strictly increasing")

    influence = case.influence
    if not sp.issparse(influence):
        raise CaseError(f"influence must be a scipy sparse matrix, got {type(influence).__name__}")
    if influence.format != "csr":
        influence = influence.tocsr()
    if influence.dtype != np.float32:
        influence = influence.astype(np.float32)
    case.influence = influence
    if influence.shape[0] != len(indices):
        raise CaseError(f"influence has {influence.shape[0]} rows but voxel_indices lists {len(indices)} voxels")
    if influence.shape[1] != len(case.beamlets):
        raise CaseError(f"influence has {influence.shape[1]} columns but there are {len(case.beamlets)} beamlets")
    if not np.isfinite(influence.data).all():
        raise InfluenceValueError("contains NaN or Inf entries")
    if (influence.data < 0).any():
        raise InfluenceValueError("contains negative entries (dose per unit weight must be >= 0)")
    issue = influence_value_issue(influence, case.beamlet_peaks)
    if issue is not None:
        raise InfluenceValueError(issue)
    if not influence.has_canonical_format:  # unsorted indices are the writer's choice; a repeated one is not
        influence.sort_indices()  # in place, no copy of the matrix
        if (repeated := repeated_entry(influence)) is not None:
            row, beamlet = repeated
            raise CaseError(
                f"influence row {row} lists beamlet {beamlet} twice: a row holds one entry per beamlet (the two "
                "values would be added; sum them first if that is meant, e.g. scipy's sum_duplicates)"
            )

    beam_ids = [beam.id for beam in case.beams]
    if len(set(beam_ids)) != len(beam_ids):
        raise CaseError(f"beam ids must be unique, got {beam_ids}")
    unknown = set(np.unique(case.beamlets.beam_id).tolist()) - set(beam_ids)
    if unknown:
        raise CaseError(f"beamlets refer to beams {sorted(unknown)} that are not in the case")

    rows = np.zeros(grid.n_voxels, dtype=bool)
    rows[indices] = True
    for name, structure in case.structures.items():
        if name != structure.name:
            raise CaseError(f"structure stored under {name!r} is named {structure.name!r}")
        if structure.mask.shape != grid.shape:
            raise CaseError(f"structure {name!r}: mask shape {structure.mask.shape} does not match the grid {grid.shape}")
        if not structure.mask.any():
            raise CaseError(f"structure {name!r} is empty (no voxel on the dose grid)")
        outside = structure.mask.ravel() & ~rows
        missing = np.count_nonzero(outside)
        if missing:
            raise CaseError(
                f"structure {name!r}: {missing} of its voxels are not rows of the influence matrix"
                f"{one_based_hint(_rows_if_one_based(indices, np.flatnonzero(outside)))}"
            )

    if case.density is not None:
        density = np.asarray(case.density, dtype=np.float32)
        if density.shape != grid.shape:
            raise CaseError(f"density shape {density.shape} does not match the grid {grid.shape}")
        if not (np.isfinite(density).all() and (density >= 0).all()):
            raise CaseError("density must be finite and non-negative (relative electron density)")
        case.density = density

    if case.ct_hu is not None:
        ct_hu = np.asarray(case.ct_hu, dtype=np.float32)
        if ct_hu.shape != grid.shape:
            raise CaseError(f"ct_hu shape {ct_hu.shape} does not match the grid {grid.shape}")
        if not np.isfinite(ct_hu).all():
            raise CaseError("ct_hu contains NaN or Inf")
        if ct_hu.min() < MIN_HU:
            raise CaseError(
                f"ct_hu has values down to {float(ct_hu.min()):g} HU, below {MIN_HU:g} HU (air); "
                "replace CT padding outside the scan with air"
            )
        case.ct_hu = ct_hu

    if case.prior_dose is not None:
        _validate_prior(case.prior_dose, grid)


def repeated_entry(matrix: sp.csr_matrix) -> tuple[int, int] | None:
    """The first (row, beamlet) stored twice in a CSR matrix whose rows' indices are sorted, or None."""
    same = np.flatnonzero(np.diff(matrix.indices) == 0) + 1  # positions equal to the entry before them
    same = same[~np.isin(same, matrix.indptr)]  # not the first entry of a row
    if same.size == 0:
        return None
    position = int(same[0])
    return int(np.searchsorted(matrix.indptr, position, side="right")) - 1, int(matrix.indices[position])


def beamlet_peaks(influence: sp.csr_matrix) -> np.ndarray:
    """Each column's largest entry (0 where it stores none), in A's dtype: one pass, no column-major copy (a cast
    to another dtype is 20x slower in numpy's `maximum.at`)."""
    peaks = np.zeros(influence.shape[1], dtype=influence.data.dtype)
    np.maximum.at(peaks, influence.indices, influence.data)
    return peaks


def influence_value_issue(influence: sp.csr_matrix, peaks: np.ndarray) -> str | None:
    """What makes these influence values (finite, >= 0) no dose a case can hold, or None.

    A matrix without a single dose above 0 plans an "optimal" 0 Gy everywhere; damaged entries
    (beamlets peaking far above the others, `MAX_PEAK_OVER_MEDIAN_PEAK`, or far above their own top-tenth
    entry, `MAX_PEAK_OVER_TOP_TENTH`) would only fail deep in a solver or plan nonsense. The first compares
    beamlets' peaks, the one dose comparable across one case's beamlets, with their median, so damage to
    less than half the beamlets cannot move its own yardstick; the second compares each beamlet with
    itself, so damage spread over most beamlets, which lifts the median peak, is still seen, and neither
    depends on a tail cutoff or on the matrix's other values. A matrix without beamlets is no dose
    calculation at all (the geometry `specc check` measures a dose on), not a failed one. `peaks`:
    `beamlet_peaks(influence)`.
    """
    if influence.shape[1] == 0:
        return None
    data = influence.data
    highest = float(peaks.max())
    if highest <= 0:
        stored = f"every one of its {data.size} stored entries is 0" if data.size else "it stores no entry"
        return f"holds no dose: {stored} (a failed dose calculation or import: no beamlet reaches any voxel)"
    with_dose = np.flatnonzero(peaks > 0)
    # "lower": a beamlet's own peak, so with two beamlets the damaged one is not half the yardstick
    median_peak = float(np.percentile(peaks[with_dose], 50, method="lower"))
    limit = MAX_PEAK_OVER_MEDIAN_PEAK * median_peak
    if highest > limit:
        return (
            f"{_damaged_beamlets(influence, peaks, with_dose[peaks[with_dose] > limit], with_dose.size)}, up to "
            f"{highest / median_peak:.2g} times the median beamlet's peak ({median_peak:.3g}); the peaks of one case's "
            f"beamlets differ by physics within about 100 times, so a peak beyond {_power(MAX_PEAK_OVER_MEDIAN_PEAK)} "
            "times the median is damage (an uninitialised or bit-flipped value, beamlets written in another unit)"
        )
    lone = _peaks_above_their_top_tenth(influence, peaks)
    if lone.size == 0:
        return None
    tops = _top_tenth_entries(influence, lone[:_NAMED_BEAMLETS])
    low, high = min(tops), max(tops)
    return (
        f"{_damaged_beamlets(influence, peaks, lone, with_dose.size)}, more than {_power(MAX_PEAK_OVER_TOP_TENTH)} "
        f"times their own top-tenth entry (the value a tenth of a beamlet's entries lie above: "
        f"{f'{high:.3g}' if low == high else f'{low:.3g}-{high:.3g}'} for those named; beamlet {int(lone[0])} peaks "
        f"at {float(peaks[lone[0]]):.3g} over {tops[0]:.3g}); a beamlet's dose is continuous in space, so the tenth "
        f"of its entries nearest its peak lie within {_power(MAX_PEAK_OVER_TOP_TENTH)} of it even stored without a "
        "tail cutoff: these peaks stand alone above their own beamlets (a share of the entries multiplied or "
        "overwritten); a matrix storing its tails below 10^-20 of their peaks (an exponential fall-off to float32's "
        "smallest values) reads so too: store them to a cutoff (any engine's, 10^-4-10^-10)"
    )


def _peaks_above_their_top_tenth(influence: sp.csr_matrix, peaks: np.ndarray) -> np.ndarray:
    """The beamlets whose peak exceeds `MAX_PEAK_OVER_TOP_TENTH` x their top-tenth entry, in order.

    A beamlet's top-tenth entry (its ceil(n/10)-th largest of n) lies below peak / 10^10 exactly when
    fewer than ceil(n/10) of its entries lie at or above that value, so a count per column says it, with
    no sort and no column-major copy; a beamlet of at most 10 entries is its own top tenth and never
    refused. A large matrix is first counted on an evenly strided sample; the beamlets the sample cannot
    clear (under twice the share near their peak, or under `_SAMPLED_TO_SAY` entries read) are counted again
    on all their entries: a sample never refuses a beamlet, and clears one only with twice the share it needs.
    """
    floor = peaks * peaks.dtype.type(1 / MAX_PEAK_OVER_TOP_TENTH)
    stride = max(1, influence.data.size // _ENTRY_SAMPLE)
    if stride == 1:
        stored, near = _counts_near_peak(influence.indices, influence.data, floor)
        return np.flatnonzero(near < np.ceil(_TOP_SHARE * stored))
    stored, near = _counts_near_peak(influence.indices[::stride], influence.data[::stride], floor)
    unclear = (near < np.ceil(2 * _TOP_SHARE * stored)) | ((stored < _SAMPLED_TO_SAY) & (peaks > 0))
    if not unclear.any():
        return np.empty(0, dtype=np.intp)
    kept = unclear[influence.indices]
    stored, near = _counts_near_peak(influence.indices[kept], influence.data[kept], floor)
    return np.flatnonzero(near < np.ceil(_TOP_SHARE * stored))


def _counts_near_peak(columns: np.ndarray, values: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the entries given, and those of them at or above the column's floor."""
    return (np.bincount(columns, minlength=floor.size),
            np.bincount(columns[values >= floor[columns]], minlength=floor.size))


def _top_tenth_entries(influence: sp.csr_matrix, beamlets: np.ndarray) -> list[float]:
    """Each beamlet's ceil(n/10)-th largest entry, for the few an error names (one pass over A)."""
    kept = np.isin(influence.indices, beamlets)
    columns, values = influence.indices[kept], influence.data[kept]
    tops = []
    for beamlet in beamlets:
        own = values[columns == beamlet]
        rank = math.ceil(_TOP_SHARE * own.size)
        tops.append(float(np.partition(own, own.size - rank)[own.size - rank]))
    return tops


def _damaged_beamlets(influence: sp.csr_matrix, peaks: np.ndarray, damaged: np.ndarray, n_with_dose: int) -> str:
    """'has damaged entries: beamlets 3, 7 (2 of 640 beamlets with dose) peak at 1e+09-3e+38 Gy ... (the
    highest entry at row 12, beamlet 7)'."""
    named = ", ".join(str(int(b)) for b in damaged[:_NAMED_BEAMLETS]) + (", ..." if damaged.size > _NAMED_BEAMLETS else "")
    position = int(np.argmax(influence.data))
    row = int(np.searchsorted(influence.indptr, position, side="right")) - 1
    low, high = float(peaks[damaged].min()), float(peaks[damaged].max())
    span = f"{high:.3g}" if low == high else f"{low:.3g}-{high:.3g}"
    return (
        f"has damaged entries: {'beamlet' if damaged.size == 1 else 'beamlets'} {named} "
        f"({damaged.size} of {n_with_dose} beamlets with dose) peak at {span} Gy per unit weight per fraction "
        f"(the highest entry at row {row}, beamlet {int(influence.indices[position])})"
    )


def _power(value: float) -> str:
    """10^4 for 1e4: the order of magnitude a threshold states."""
    return f"10^{math.log10(value):.0f}"


def _rows_if_one_based(indices: np.ndarray, missing_flat: np.ndarray) -> bool:
    """Whether every structure voxel that is not a row would be one if `voxel_indices` counted from 1."""
    found, _ = row_lookup(indices - 1, missing_flat)
    return bool(found.all())


def one_based_hint(likely: bool) -> str:
    """The hint for indices that count from 1 (MATLAB's habit), where the numbers point to it."""
    if not likely:
        return ""
    return (
        "; voxel_indices look 1-based (MATLAB's habit): specc's flat indices are 0-based, C order over (x, y, z) "
        "(`i*ny*nz + j*nz + k`): subtract 1, and reorder matRad's column-major [Ny Nx Nz] indices "
        "(docs/case-format.md)"
    )


def _validate_prior(prior: PriorDose, grid: Grid) -> None:
    total = np.asarray(prior.total_gy)
    if total.shape != grid.shape:
        raise CaseError(f"prior dose shape {total.shape} does not match the grid {grid.shape}")
    if not (np.isfinite(total).all() and (total >= 0).all()):
        raise CaseError("the prior dose must be finite and non-negative (Gy)")
